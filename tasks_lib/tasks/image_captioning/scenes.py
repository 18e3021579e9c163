"""Generated captioning scenes: one or two objects, their attributes and a compositional caption.

Each scene is a real scikit-image texture (``core/synthetic.background``) with one or two
non-overlapping objects, each of a size class (small / large), a colour and a kind from
``core/synthetic``. The caption is a pure function of those attributes:

- one object: ``"a large red circle"``
- two objects: ``"a large red circle left of a small blue square"``, relation one of
  ``left of / right of / above / below``. The first-named object is the larger one; when
  both have the same size class, the left one (horizontal) or the upper one (vertical), so
  every image has exactly one correct caption. Objects are placed so the relation is
  unambiguous: separated along its axis and offset along the other by at most half as much.

Compositional split: ``held_out`` lists (colour, kind) pairs that never occur in train or
val scenes; every test scene holds at least one of them. Each colour and kind of a held-out
pair still appears in training with other partners, so the test measures whether the model
composes attributes it has seen separately.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks_lib.core import synthetic

SIZE_WORDS = ("small", "large")
RELATIONS = ("left of", "right of", "above", "below")
DEFAULT_HELD_OUT = "red circle,green square,blue triangle,yellow cross,magenta digit 2,cyan digit 5"


def parse_pairs(spec: str) -> list[tuple[str, str]]:
    """``"red circle,magenta digit 2"`` -> [("red", "circle"), ("magenta", "digit 2")], checked."""
    pairs = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        color, _, kind = item.partition(" ")
        if color not in synthetic.COLORS or kind not in synthetic.KINDS:
            raise ValueError(
                f"held-out pair '{item}' is not '<colour> <kind>' with colour in {list(synthetic.COLORS)} "
                f"and kind in {list(synthetic.KINDS)}"
            )
        pairs.append((color, kind))
    return pairs


@dataclass(frozen=True)
class Described:
    """An object with its size class, as the caption names it."""

    obj: synthetic.SceneObject
    size_word: str

    @property
    def phrase(self) -> str:
        return f"a {self.size_word} {self.obj.color} {self.obj.kind}"


def caption(objects: list[Described]) -> str:
    """The caption of one or two described objects (see the module docstring for the order rule)."""
    if len(objects) == 1:
        return objects[0].phrase
    a, b = objects
    ca = (a.obj.x + a.obj.size / 2, a.obj.y + a.obj.size / 2)
    cb = (b.obj.x + b.obj.size / 2, b.obj.y + b.obj.size / 2)
    dx, dy = cb[0] - ca[0], cb[1] - ca[1]
    horizontal = abs(dx) >= abs(dy)
    if a.size_word == b.size_word:  # same size class: name the left (or upper) object first
        first_is_a = dx > 0 if horizontal else dy > 0
    else:
        first_is_a = a.size_word == "large"
    first, second = (a, b) if first_is_a else (b, a)
    d = (dx if horizontal else dy) * (1 if first_is_a else -1)  # second minus first along the axis
    relation = ("left of" if d > 0 else "right of") if horizontal else ("above" if d > 0 else "below")
    return f"{first.phrase} {relation} {second.phrase}"


def _attributes(
    rng: np.random.Generator, allowed: list[tuple[str, str]], forced: tuple[str, str] | None
) -> tuple[str, str]:
    if forced is not None:
        return forced
    return allowed[int(rng.integers(len(allowed)))]


def scene(
    rng: np.random.Generator,
    size: int,
    n_objects: int,
    pairs: list[tuple[str, str]],
    small: tuple[int, int],
    large: tuple[int, int],
    forced: tuple[str, str] | None = None,
) -> tuple[np.ndarray, str, list[Described]]:
    """One scene: (image uint8 SxSx3, caption, objects). ``pairs``: the (colour, kind) pairs to draw from;
    ``forced``: a pair one random object must have (the test split's held-out pair)."""
    bg = synthetic.background(rng, size)
    forced_slot = int(rng.integers(n_objects)) if forced is not None else -1
    described: list[Described] = []
    for slot in range(n_objects):
        color, kind = _attributes(rng, pairs, forced if slot == forced_slot else None)
        word = SIZE_WORDS[int(rng.integers(2))]
        lo, hi = small if word == "small" else large
        side = int(rng.integers(lo, hi + 1))
        described.append(Described(synthetic.SceneObject(kind, color, side, 0, 0), word))
    if n_objects == 1:
        o = described[0].obj
        x, y = (int(rng.integers(0, size - o.size + 1)) for _ in range(2))
        described[0] = Described(synthetic.SceneObject(o.kind, o.color, o.size, x, y), described[0].size_word)
    else:
        described = _place_pair(rng, size, described)
    img, _, _ = synthetic.render(bg, [d.obj for d in described], rng)
    return img, caption(described), described


def _place_pair(rng: np.random.Generator, size: int, pair: list[Described]) -> list[Described]:
    """Positions for two objects: apart along a random axis, offset along the other by at most half as much."""
    a, b = pair[0].obj, pair[1].obj
    gap = max(2, size // 32)
    for _try in range(200):
        horizontal = rng.random() < 0.5
        # along the axis: a then b or b then a, with at least ``gap`` pixels between them
        first, second = (a, b) if rng.random() < 0.5 else (b, a)
        free = size - first.size - second.size - gap
        if free < 0:
            raise ValueError(f"objects of {first.size} and {second.size} px do not fit side by side in {size} px")
        p1 = int(rng.integers(0, free + 1))
        p2 = int(rng.integers(p1 + first.size + gap, size - second.size + 1))
        q1 = int(rng.integers(0, size - first.size + 1))
        q2 = int(rng.integers(0, size - second.size + 1))
        main = (p2 + second.size / 2) - (p1 + first.size / 2)
        other = (q2 + second.size / 2) - (q1 + first.size / 2)
        if abs(other) <= 0.5 * abs(main):
            break
    pos = {id(first): (p1, q1), id(second): (p2, q2)}
    out = []
    for d in pair:
        p, q = pos[id(d.obj)]
        x, y = (p, q) if horizontal else (q, p)
        out.append(Described(synthetic.SceneObject(d.obj.kind, d.obj.color, d.obj.size, x, y), d.size_word))
    return out


def generate(
    rng: np.random.Generator,
    n: int,
    size: int,
    held_out: list[tuple[str, str]],
    test: bool,
    two_object_fraction: float,
    small: tuple[int, int],
    large: tuple[int, int],
) -> tuple[np.ndarray, list[str]]:
    """``n`` scenes: test scenes each hold a held-out pair; the others hold none."""
    all_pairs = [(c, k) for c in synthetic.COLORS for k in synthetic.KINDS]
    seen = [p for p in all_pairs if p not in held_out]
    images, captions = [], []
    for _ in range(n):
        n_obj = 2 if rng.random() < two_object_fraction else 1
        forced = held_out[int(rng.integers(len(held_out)))] if test else None
        img, text, _ = scene(rng, size, n_obj, seen if not test else all_pairs, small, large, forced)
        images.append(img)
        captions.append(text)
    return np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8), captions
