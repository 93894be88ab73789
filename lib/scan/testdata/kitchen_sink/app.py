"""A FastAPI app exercising many scan conventions at once (not an example service).

lib/scan/compare.test.ts runs it with uvicorn and checks that `kea scan` derives the same
API from this source as FastAPI itself publishes at /openapi.json.
"""
from typing import Annotated, Any, Optional

from fastapi import APIRouter, Body, FastAPI, Header, Path, Query, status

from models import Color, Note, Point, Problem, Shape, ShapeList

router = APIRouter(prefix="/shapes", tags=["shapes"])
v2 = APIRouter()


@router.get("/{shape_id}", response_model=Shape)
async def get_shape(
    shape_id: Annotated[str, Path(min_length=8, max_length=36, description="shape id")],
    verbose: bool = False,
    x_request_id: Annotated[Optional[str], Header()] = None,
):
    """Get one shape."""
    raise NotImplementedError


@router.get("", response_model=ShapeList)
def list_shapes(
    limit: int = Query(10, ge=1, le=100),
    color: Optional[Color] = None,
    q: Annotated[Optional[str], Query(max_length=20)] = None,
    kind: str = Query("circle", pattern="^(circle|polygon)$"),
    ids: list[int] = Query([]),
) -> ShapeList:
    """List shapes.

    Filters combine with AND.
    """
    return ShapeList(items=[], total=0)


@router.get("/search/{color}")
def search(
    color: Color,
    names: Annotated[list[str], Query(min_length=1)],
    x_token: str = Header(alias="X-Token"),
    page: int | None = Query(None, ge=0),
    size: Annotated[int, Query(alias="pageSize", le=50)] = 10,
    exact: Optional[bool] = None,
) -> list[Shape]:
    """Search shapes of one colour by name."""
    return []


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Shape)
def create_shape(shape: Shape, dry_run: bool = Query(False, description="validate only")) -> Shape:
    return shape


@router.put("/{shape_id}/points/{index}", responses={404: {"description": "No such shape", "model": Problem}})
def put_point(
    shape_id: str,
    index: Annotated[int, Path(ge=0)],
    point: Point,
    note: str = Body(..., max_length=200),
) -> Point:
    """Replace one point of a shape."""
    return point


@router.delete("/{shape_id}", status_code=204)
def delete_shape(shape_id: str) -> None:
    """Delete a shape."""


@v2.api_route("/ping", methods=["GET", "HEAD"])
def ping() -> dict[str, Any]:
    return {"pong": True}


@v2.post("/embed", response_model=list[Point])
def embed(point: Point = Body(embed=True), scale: Annotated[float, Body(gt=0)] = 1.0):
    """Scale a point."""
    return [point]


@v2.post("/maybe", response_model=None, status_code=202)
def maybe(body: Optional[Point] = None) -> None:
    """Optional body, no response model."""


@v2.post("/notes")
def add_note(note: Note) -> Note:
    return note


app = FastAPI(title="kitchen", version="0.0.1")
app.include_router(router, prefix="/api")
app.include_router(v2, prefix="/v2", tags=["v2"])


@app.get("/items/{item_id}")
def read_item(item_id: int, q: str | None = None, user_agent: str | None = Header(default=None)):
    """Read an item.

    Longer description here.
    \f
    Internal notes that FastAPI cuts at the form feed.
    """
    return {"item_id": item_id}


@app.get("/hidden", include_in_schema=False)
def hidden() -> dict[str, str]:
    return {}
