"""Routes of the grades service.

Who may call what is declared next to each route in ``openapi_extra`` under ``x-kea-access``
(see docs/scan-conventions.md): KEA reads it both from this source (``kea scan``) and from the
service's own /openapi.json (``kea import``), and the gateway enforces it.
"""
from typing import Optional

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

router = APIRouter(tags=["grades"])

# In-memory store, seeded: {student: {course: grade}}.
GRADES: dict[str, dict[str, int]] = {
    "alice": {"math": 91, "physics": 78},
    "bob": {"math": 67},
}


class Grade(BaseModel):
    course: str = Field(min_length=1, max_length=64)
    grade: int = Field(ge=0, le=100, description="percent")


class GradeList(BaseModel):
    """All grades of one student."""

    student: str
    grades: list[Grade]


class SetGrade(BaseModel):
    """A grade to record (replaces an earlier grade for the same course)."""

    student: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_-]*$")
    course: str = Field(min_length=1, max_length=64)
    grade: int = Field(ge=0, le=100, description="percent")
    comment: Optional[str] = Field(default=None, max_length=500)


class SetGradeResult(BaseModel):
    student: str
    course: str
    grade: int
    previous: Optional[int] = Field(default=None, description="the grade this one replaced, if any")


@router.get(
    "/get_grades",
    response_model=GradeList,
    openapi_extra={"x-kea-access": {"mode": "restricted", "roles": ["student", "teacher"]}},
)
def get_grades(
    student: str = Query(min_length=1, max_length=64, description="student id"),
    course: Optional[str] = Query(default=None, description="only this course"),
) -> GradeList:
    """Read a student's grades.

    Students and teachers may call this.
    """
    if student not in GRADES:
        raise HTTPException(status_code=404, detail="unknown student")
    items = [Grade(course=c, grade=g) for c, g in sorted(GRADES[student].items()) if course in (None, c)]
    return GradeList(student=student, grades=items)


@router.post(
    "/set_grades",
    response_model=SetGradeResult,
    openapi_extra={"x-kea-access": {"mode": "restricted", "roles": ["teacher"]}},
)
def set_grades(body: SetGrade) -> SetGradeResult:
    """Record a grade.

    Only teachers may call this.
    """
    previous = GRADES.setdefault(body.student, {}).get(body.course)
    GRADES[body.student][body.course] = body.grade
    return SetGradeResult(student=body.student, course=body.course, grade=body.grade, previous=previous)
