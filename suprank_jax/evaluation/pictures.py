"""Retrieval pictures: a grid of queries and their top-k results, each result framed by its relevance.

Row ``q`` of a grid holds query ``q`` (blue frame), then, after a wider gap, its ``k`` results in
ranking order. A result's frame says how it relates to the query (:func:`relevance_kinds`):

* ``class`` (green): the same finest class (the pair agrees on every label column);
* ``super-class`` (orange): the same class at a coarser level only (``0 < level < L``);
* ``other`` (red): no label in common;
* ``unknown`` (grey): the query has no labels (e.g. a file given to ``suprank_jax.search``).

Layout (:class:`GridLayout`), in pixels: a margin of ``gap`` around everything; cells of
``cell_size x cell_size`` (the frame, ``frame`` wide, included) separated by ``gap`` (``2 * gap``
between the query and its first result); under each cell a caption strip of ``caption_height``
(0 without captions); a legend strip of ``legend_height`` at the bottom. The background is white.

Images keep their aspect ratio inside a frame (letterboxed on the background colour). A small image
(its longer side at most half the box, e.g. an 8x8 digit) is enlarged by the largest integer factor
with nearest-neighbour sampling, so that its pixels stay sharp squares; others are resized smoothly
to fit. Grey images are shown grey.

:func:`retrieval_grid` is pure (images in, ``uint8 [H, W, 3]`` out). :func:`evaluation_picture`
embeds a fixed set of queries of an evaluation and their gallery and draws them;
:func:`write_picture` saves a picture as a PNG under ``<workdir>/pictures/`` and to TensorBoard (the run
``pictures`` of ``<workdir>/tensorboard``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from suprank_jax.runtime.run_dir import RunDir

__all__ = [
  "FRAME_COLORS",
  "RELEVANCE_KINDS",
  "GridLayout",
  "grid_layout",
  "relevance_kinds",
  "fit_image",
  "retrieval_grid",
  "choose_queries",
  "subset_source",
  "evaluation_picture",
  "write_picture",
  "write_evaluation_picture",
]

# Kind of a result, by its relevance code (relevance_kinds): 0, 1, 2; -1 is "unknown".
RELEVANCE_KINDS = ("other", "super-class", "class")
FRAME_COLORS = {
  "query": (31, 119, 180),
  "class": (44, 160, 44),
  "super-class": (255, 150, 0),
  "other": (214, 39, 40),
  "unknown": (150, 150, 150),
}
BACKGROUND = (255, 255, 255)
TEXT_COLOR = (40, 40, 40)


@dataclasses.dataclass(frozen=True)
class GridLayout:
  """Pixel geometry of a grid of ``num_rows`` queries with ``num_results`` results each.

  Column 0 is the query, columns ``1..num_results`` its results.
  """

  num_rows: int
  num_results: int
  cell_size: int = 96
  frame: int = 4
  gap: int = 6
  caption_height: int = 0
  legend_height: int = 0

  def __post_init__(self):
    if self.num_rows < 1 or self.num_results < 1:
      raise ValueError(f"a grid needs at least one query and one result, got {self.num_rows} x {self.num_results}")
    if self.cell_size <= 2 * self.frame + 1:
      raise ValueError(f"cell_size={self.cell_size} leaves no room inside a frame of {self.frame} pixels")

  @property
  def row_height(self) -> int:
    return self.cell_size + self.caption_height

  @property
  def shape(self) -> tuple[int, int, int]:
    """``(height, width, 3)`` of the picture."""
    height = self.gap + self.num_rows * (self.row_height + self.gap) + self.legend_height
    width = self.gap + (self.num_results + 1) * (self.cell_size + self.gap) + self.gap
    return height, width, 3

  def cell_origin(self, row: int, column: int) -> tuple[int, int]:
    """``(y, x)`` of the top-left pixel of cell ``(row, column)`` (its frame's outer corner)."""
    y = self.gap + row * (self.row_height + self.gap)
    x = self.gap + column * (self.cell_size + self.gap) + (self.gap if column > 0 else 0)
    return y, x

  @property
  def inner_size(self) -> int:
    """Side of the square an image is fitted into, inside the frame."""
    return self.cell_size - 2 * self.frame


def grid_layout(
  num_rows: int,
  num_results: int,
  *,
  cell_size: int = 96,
  frame: int = 4,
  gap: int = 6,
  captions: bool = False,
  legend: bool = False,
) -> GridLayout:
  """The layout :func:`retrieval_grid` uses: captions take a strip of the font size plus 4 pixels
  under every row, a legend the font size plus ``2 * gap`` at the bottom (font size: ``cell_size // 8``
  within 8..12)."""
  font_size = _font_size(cell_size)
  return GridLayout(
    num_rows,
    num_results,
    cell_size=cell_size,
    frame=frame,
    gap=gap,
    caption_height=font_size + 4 if captions else 0,
    legend_height=font_size + 2 * gap if legend else 0,
  )


def _font_size(cell_size: int) -> int:
  return max(8, min(12, cell_size // 8))


def relevance_kinds(levels, num_levels: int) -> np.ndarray:
  """Relevance codes of pair levels: 2 = class, 1 = super-class, 0 = other (see :data:`RELEVANCE_KINDS`).

  Args:
    levels: int array of pair levels (agreeing label columns, :func:`suprank_jax.hierarchy.pair_levels`).
    num_levels: ``L``, the number of label columns.

  Returns:
    int array shaped like ``levels``.
  """
  levels = np.asarray(levels)
  if levels.size and (levels.min() < 0 or levels.max() > num_levels):
    raise ValueError(f"pair levels must be in 0..{num_levels}, got {levels.min()}..{levels.max()}")
  return np.where(levels >= num_levels, 2, np.where(levels > 0, 1, 0)).astype(np.int64)


def _as_rgb(image) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
    raise ValueError(f"an image must be [H, W] or [H, W, 1|3|4], got shape {image.shape}")
  if image.dtype != np.uint8:
    raise ValueError(f"images must be uint8, got {image.dtype}")
  if image.shape[-1] == 1:
    return np.repeat(image, 3, axis=-1)
  return image[..., :3]


def fit_image(image, size: int) -> np.ndarray:
  """``image`` inside a ``size x size`` RGB square, aspect ratio kept, centred on the background.

  Args:
    image: uint8 ``[H, W]`` or ``[H, W, C]`` (C = 1, 3 or 4).
    size: side of the square.

  Returns:
    uint8 ``[size, size, 3]``. Small images (longer side ``<= size / 2``) are enlarged by an integer
    factor with nearest-neighbour sampling; others are resized with PIL's antialiased bilinear filter.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  image = _as_rgb(image)
  h, w = image.shape[:2]
  longest = max(h, w)
  if 2 * longest <= size:
    factor = size // longest
    fitted = np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
  else:
    scale = size / longest
    new_h, new_w = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))
    fitted = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
  out = np.empty((size, size, 3), np.uint8)
  out[:] = BACKGROUND
  top, left = (size - fitted.shape[0]) // 2, (size - fitted.shape[1]) // 2
  out[top : top + fitted.shape[0], left : left + fitted.shape[1]] = fitted
  return out


def _font(size: int):
  from PIL import ImageFont  # pylint: disable=g-import-not-at-top

  try:
    return ImageFont.load_default(size=size)
  except TypeError:  # Pillow < 10.1: a fixed bitmap font
    return ImageFont.load_default()


def _fit_text(draw, text: str, width: int, font) -> str:
  if draw.textlength(text, font=font) <= width:
    return text
  while text and draw.textlength(text + "…", font=font) > width:
    text = text[:-1]
  return text + "…"


def retrieval_grid(
  query_images: Sequence[np.ndarray],
  result_images: Sequence[Sequence[np.ndarray]],
  relevance=None,
  *,
  captions: Sequence[Sequence[str]] | None = None,
  legend: Sequence[str] | None = None,
  cell_size: int = 96,
  frame: int = 4,
  gap: int = 6,
) -> np.ndarray:
  """Draws queries and their results as one RGB picture (see the module docstring for the layout).

  Args:
    query_images: ``Q`` uint8 images ``[H, W]`` / ``[H, W, C]``, any sizes.
    result_images: ``Q`` sequences of ``K`` images each, in ranking order.
    relevance: ``[Q, K]`` relevance codes (:func:`relevance_kinds`: 2 class, 1 super-class, 0 other),
      or ``None`` / -1 entries for unknown relevance (grey frames).
    captions: optional ``Q`` sequences of ``K + 1`` strings (the query's first), drawn under the cells.
    legend: optional names of the kinds ``(query, class, super-class, other)`` for a legend strip at
      the bottom, e.g. ``("query", "same digit", "same shape", "other")``; None leaves a kind out.
    cell_size, frame, gap: geometry in pixels (:class:`GridLayout`).

  Returns:
    uint8 ``[H, W, 3]`` of the shape of :func:`grid_layout`.

  Raises:
    ValueError: rows of unequal length, or ``relevance`` / ``captions`` of the wrong shape.
  """
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top

  num_q = len(query_images)
  if len(result_images) != num_q:
    raise ValueError(f"{num_q} query images but {len(result_images)} rows of results")
  lengths = {len(row) for row in result_images}
  if len(lengths) != 1:
    raise ValueError(f"every query needs the same number of results, got row lengths {sorted(lengths)}")
  k = lengths.pop()
  relevance = np.full((num_q, k), -1, np.int64) if relevance is None else np.asarray(relevance, np.int64)
  if relevance.shape != (num_q, k):
    raise ValueError(f"relevance must be [{num_q}, {k}] (queries x results), got shape {relevance.shape}")
  if captions is not None and (len(captions) != num_q or any(len(c) != k + 1 for c in captions)):
    raise ValueError(f"captions must be {num_q} rows of {k + 1} strings (the query's first)")
  if legend is not None and len(legend) != 4:
    raise ValueError(f"legend names (query, class, super-class, other), got {len(legend)} names")
  font_size = _font_size(cell_size)
  layout = grid_layout(
    num_q, k, cell_size=cell_size, frame=frame, gap=gap, captions=captions is not None, legend=legend is not None
  )
  canvas = np.empty(layout.shape, np.uint8)
  canvas[:] = BACKGROUND

  def put(row, column, image, color):
    y, x = layout.cell_origin(row, column)
    canvas[y : y + cell_size, x : x + cell_size] = color
    canvas[y + frame : y + cell_size - frame, x + frame : x + cell_size - frame] = fit_image(image, layout.inner_size)

  for q in range(num_q):
    put(q, 0, query_images[q], FRAME_COLORS["query"])
    for j in range(k):
      code = relevance[q, j]
      put(q, j + 1, result_images[q][j], FRAME_COLORS[RELEVANCE_KINDS[code] if 0 <= code < 3 else "unknown"])
  if captions is None and legend is None:
    return canvas
  pil = Image.fromarray(canvas)
  draw = ImageDraw.Draw(pil)
  font = _font(font_size)
  if captions is not None:
    for q in range(num_q):
      for column, text in enumerate(captions[q]):
        y, x = layout.cell_origin(q, column)
        draw.text(
          (x + 1, y + cell_size + 2), _fit_text(draw, str(text), cell_size - 2, font), fill=TEXT_COLOR, font=font
        )
  if legend is not None:
    y = layout.shape[0] - layout.legend_height + gap // 2
    x = gap
    for name, key in zip(legend, ("query", "class", "super-class", "other")):
      if name is None:
        continue
      draw.rectangle((x, y, x + font_size, y + font_size), fill=FRAME_COLORS[key])
      draw.text((x + font_size + 4, y), name, fill=TEXT_COLOR, font=font)
      x += font_size + 12 + int(draw.textlength(name, font=font))
  return np.asarray(pil)


def choose_queries(labels, num_queries: int, *, seed: int = 0) -> np.ndarray:
  """A fixed set of query indices, of distinct finest classes where possible.

  Items are visited in a random order drawn from ``seed``; the first item of each new class (label
  column 0) is taken until ``num_queries`` are chosen, then the remaining items fill up.

  Args:
    labels: ``[N, L]`` int labels.
    num_queries: how many (at most ``N``).
    seed: the random order.

  Returns:
    ``[min(num_queries, N)]`` int64 indices, in the order chosen.
  """
  labels = np.asarray(labels)
  order = np.random.default_rng(seed).permutation(len(labels))
  if labels.ndim != 2 or labels.shape[1] == 0:
    return order[:num_queries].astype(np.int64)
  _, first = np.unique(labels[order, 0], return_index=True)
  first_of_class = order[np.sort(first)]
  rest = order[~np.isin(order, first_of_class)]
  return np.concatenate([first_of_class, rest])[:num_queries].astype(np.int64)


class _RecordRows:
  """Rows ``index`` of a random-access record sequence."""

  def __init__(self, records, index):
    self._records, self._index = records, index

  def __len__(self):
    return len(self._index)

  def __getitem__(self, i):
    return self._records[int(self._index[i])]


def subset_source(source, index):
  """The items ``index`` of a :class:`~suprank_jax.input_pipeline.sources.Source`, as a Source."""
  index = np.asarray(index, np.int64)
  fields = {"labels": source.labels[index], "extras": {}}
  if source.images is not None:
    fields["images"] = source.images[index]
  elif source.paths is not None:
    fields["paths"] = tuple(source.paths[i] for i in index)
  else:
    fields["records"] = _RecordRows(source.records, index)
    if source.describe is not None:
      fields["describe"] = lambda i: source.describe(int(index[i]))
  if source.boxes is not None:
    fields["boxes"] = source.boxes[index]
  return dataclasses.replace(source, **fields)


def _gallery_subset(num_gallery: int, must_include, max_items: int, seed: int) -> np.ndarray:
  """Sorted gallery indices: all of them, or ``max_items`` of them including ``must_include``."""
  if num_gallery <= max_items:
    return np.arange(num_gallery)
  must = np.unique(np.asarray(must_include, np.int64))
  others = np.setdiff1d(np.arange(num_gallery), must)
  extra = np.random.default_rng(seed).choice(others, size=max(0, max_items - len(must)), replace=False)
  return np.sort(np.concatenate([must, extra]))


def evaluation_picture(
  evaluator,
  variables,
  *,
  num_queries: int = 8,
  k: int = 8,
  seed: int = 0,
  max_gallery_items: int = 20_000,
  cell_size: int = 96,
) -> np.ndarray:
  """The retrieval picture of an evaluation: fixed queries and their top-``k`` gallery items.

  The queries (:func:`choose_queries` of the query split, the same at every call) and the gallery are
  embedded with ``variables`` (every process takes part, as in an evaluation). A gallery larger than
  ``max_gallery_items`` is replaced by a fixed random subset of that size holding the queries' own
  copies (the legend then says so): the picture should not cost a second full evaluation.

  Args:
    evaluator: a :class:`suprank_jax.evaluation.evaluator.Evaluator`.
    variables: model variables.
    num_queries, k: rows and results per row.
    seed: chooses the queries (and the gallery subset).
    max_gallery_items: gallery size above which a subset is used.
    cell_size: pixels per cell.

  Returns:
    uint8 ``[H, W, 3]`` (:func:`retrieval_grid`, with captions ``label`` / ``score`` and a legend).
  """
  from suprank_jax import hierarchy  # pylint: disable=g-import-not-at-top
  from suprank_jax.evaluation import scoring  # pylint: disable=g-import-not-at-top

  query_source = evaluator.query_source
  leave_one_out = evaluator.gallery_source is None
  gallery_source = query_source if leave_one_out else evaluator.gallery_source
  queries = choose_queries(query_source.labels, num_queries, seed=seed)
  if leave_one_out:
    own = queries
  elif evaluator.self_index is not None:
    own = np.asarray(evaluator.self_index)[queries]
  else:
    own = np.full(len(queries), -1, np.int64)
  kept = _gallery_subset(len(gallery_source), own[own >= 0], max_gallery_items, seed)
  self_index = np.where(own >= 0, np.searchsorted(kept, own), -1)
  gallery_sub = subset_source(gallery_source, kept)
  query_embeddings, query_labels = evaluator.embed(variables, subset_source(query_source, queries))
  gallery_embeddings, gallery_labels = evaluator.embed(variables, gallery_sub)
  k = min(k, len(kept) - int(np.any(self_index >= 0)))
  neighbors, scores = scoring.exact_top_k(query_embeddings, gallery_embeddings, k, self_index)
  levels = np.asarray(hierarchy.pair_levels(query_labels, gallery_labels))
  relevance = relevance_kinds(np.take_along_axis(levels, neighbors, axis=1), query_labels.shape[1])
  finest = query_source.level_names[0]
  captions = [
    [f"{finest} {query_labels[q, 0]}"] + [f"{gallery_labels[g, 0]}  {s:.2f}" for g, s in zip(neighbors[q], scores[q])]
    for q in range(len(queries))
  ]
  coarse = "/".join(query_source.level_names[1:])
  other = "other" if len(kept) == len(gallery_source) else f"other (gallery: {len(kept):,} of {len(gallery_source):,})"
  legend = ("query", f"same {finest}", f"same {coarse}" if coarse else None, other)
  return retrieval_grid(
    [query_source.load_image(int(i)) for i in queries],
    [[gallery_sub.load_image(int(g)) for g in row] for row in neighbors],
    relevance,
    captions=captions,
    legend=legend,
    cell_size=cell_size,
  )


def write_picture(workdir: str, step: int, name: str, picture: np.ndarray, *, tensorboard: bool = True) -> str:
  """Saves ``picture`` as ``<workdir>/pictures/<name>_step<step>.png`` and, with ``tensorboard``, as the
  image ``<name>/retrievals`` of the TensorBoard run ``<workdir>/tensorboard/pictures``. Process 0 only.

  The pictures have their own run (folder): TensorBoard follows only the newest event file of a folder,
  so a picture file next to the trainer's would hide its later scalars until a reload.

  Returns:
    The PNG's path ('' on other processes).
  """
  import jax  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top

  if jax.process_index() != 0:
    return ""
  folder = RunDir(workdir).pictures
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, f"{name}_step{int(step):06d}.png")
  Image.fromarray(np.asarray(picture, np.uint8)).save(path)
  if tensorboard:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top

    with SummaryWriter(os.path.join(RunDir(workdir).tensorboard, "pictures")) as tb:
      tb.add_image(f"{name}/retrievals", np.asarray(picture, np.uint8), int(step), dataformats="HWC")
  return path


def write_evaluation_picture(
  workdir: str, step: int, name: str, evaluator, variables, *, tensorboard: bool = True, **picture_kwargs
) -> str:
  """:func:`evaluation_picture` then :func:`write_picture`: the trainer's call after evaluation ``name``.

  Every process must call it (the embedding is collective); process 0 writes. Returns the PNG's path.
  """
  picture = evaluation_picture(evaluator, variables, **picture_kwargs)
  return write_picture(workdir, step, name, picture, tensorboard=tensorboard)
