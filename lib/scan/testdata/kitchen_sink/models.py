"""Models of the kitchen-sink app: enums, inheritance, aliases, nested optionals, unions."""
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, IntEnum
from typing import Any, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field


class Color(str, Enum):
    """Colours a shape can have."""

    red = "red"
    green = "green"


class Level(IntEnum):
    low = 1
    high = 2


class Point(BaseModel):
    x: float = Field(ge=-1000, le=1000)
    y: float = Field(gt=0, lt=10.5, description="height above ground")


class Base(BaseModel):
    id: str = Field(min_length=8)
    created: Optional[datetime] = None


class Shape(Base):
    """A shape made of points."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["circle", "polygon"]
    color: Color = Color.red
    level: Level = Level.low
    points: List[Point] = Field(default_factory=list, max_length=100)
    center: Optional[Point] = None
    labels: dict[str, str] = {}
    weight: Union[int, float] = 1
    tags: set[str] = Field(default_factory=set)
    meta: Any = None
    name: str = Field("shape", alias="displayName", min_length=1, pattern="^[a-z]+$", description="lower-case name")
    version: Literal[2] = 2
    bounds: tuple[float, float] = (0.0, 1.0)
    pair: Optional[tuple[int, str]] = None


class ShapeList(BaseModel):
    items: list[Shape]
    total: int = Field(ge=0)
    next: "Optional[str]" = None


class Problem(BaseModel):
    title: str
    status: int


@dataclass
class Note:
    """A dataclass body."""

    text: str
    stars: int = 3
    tags: list[str] = field(default_factory=list)
