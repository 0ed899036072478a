"""The timeline: each face's emotion probabilities over a video, as a plot (stacked, one panel
per face) and as a JSON series (what the web page charts).

Both come from a :class:`TrackSeries` per track, fed record by record as the video is
analysed, so that the timeline of an hour-long video needs no more memory than one of a
minute: no per-frame record has to be kept for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emolens.labels import EMOTIONS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from emolens.inference.video import VideoResult

#: samples a track keeps before halving its resolution: a 1,000 px wide plot needs no more
SERIES_POINTS = 1000


class TrackSeries:
    """One track's probabilities over time, in at most ``2 * points`` samples.

    Every record is a sample of its own until there are ``2 * points``; then neighbouring
    samples are averaged in pairs, and each later sample is the mean of twice as many records.
    A track of any length takes bounded memory, and one shorter than ``2 * points`` records
    is drawn exactly as recorded.
    """

    def __init__(self, points: int = SERIES_POINTS):
        if points < 1:
            raise ValueError(f"points must be 1 or more, got {points}")
        self.points = points
        self.per_sample = 1  # records averaged into each full sample
        self._times: list[float] = []
        self._scores: list[np.ndarray] = []
        self._pending_time = 0.0
        self._pending_scores = np.zeros(len(EMOTIONS))
        self._pending = 0

    def add(self, time: float, probabilities: tuple[float, ...] | np.ndarray) -> None:
        """The track's next record (in time order)."""
        self._pending_time += time
        self._pending_scores += probabilities
        self._pending += 1
        if self._pending < self.per_sample:
            return
        self._times.append(self._pending_time / self._pending)
        self._scores.append(self._pending_scores / self._pending)
        self._pending_time, self._pending = 0.0, 0
        self._pending_scores.fill(0.0)
        if len(self._times) == 2 * self.points:
            self._times = [(a + b) / 2 for a, b in zip(self._times[::2], self._times[1::2])]
            self._scores = [(a + b) / 2 for a, b in zip(self._scores[::2], self._scores[1::2])]
            self.per_sample *= 2

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        """Times, shape (n,), and mean probabilities, shape (n, 7), the last (partial) sample included."""
        times, scores = list(self._times), list(self._scores)
        if self._pending:
            times.append(self._pending_time / self._pending)
            scores.append(self._pending_scores / self._pending)
        return np.array(times), np.array(scores).reshape(-1, len(EMOTIONS))

    def to_dict(self) -> dict:
        """``{"time": [...], "scores": {"angry": [...], ...}}``, columns of :meth:`samples`, 4 decimals."""
        times, scores = self.samples()
        return {
            "time": [round(float(t), 4) for t in times],
            "scores": {e: [round(float(p), 4) for p in scores[:, i]] for i, e in enumerate(EMOTIONS)},
        }


def write_series(result: VideoResult, path: Path) -> None:
    """Every track's :class:`TrackSeries` as JSON (``{"tracks": {"1": TrackSeries.to_dict(), ...}}``):
    what a page needs to chart a video of any length without loading its per-frame records."""
    tracks = {str(tid): track.series.to_dict() for tid, track in sorted(result.tracks.items())}
    path.write_text(json.dumps({"tracks": tracks}, separators=(",", ":")) + "\n")


def plot_timeline(result: VideoResult, path: Path, *, max_tracks: int = 6) -> None:
    """Write the timeline figure (see :func:`timeline_figure`) as a PNG."""
    timeline_figure(result, max_tracks=max_tracks).savefig(path, dpi=100)


def timeline_figure(result: VideoResult, *, max_tracks: int = 6) -> Figure:
    """Stacked emotion probabilities over time, one panel per track (the longest first).

    The panels share one time axis from 0 to the video's end, labelled once at the bottom,
    so that a moment lines up across faces; scene cuts are dashed lines, and tracks too short
    to count say so. A ``matplotlib.figure.Figure`` is built directly: no pyplot, no backend
    switch, nothing global changed in the caller's matplotlib.
    """
    from matplotlib.figure import Figure

    from emolens.inference.annotate import COLORS

    shown = sorted(result.tracks.items(), key=lambda kv: -kv[1].frames)[:max_tracks]
    rows = max(1, len(shown))
    fig = Figure(figsize=(10, 1.8 * rows + 0.6), layout="tight")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    end = max([result.info.duration, *(track.end for _, track in shown)]) or 1
    colors = [tuple(c / 255 for c in COLORS[e][::-1]) for e in EMOTIONS]
    for ax, (tid, track) in zip(axes, shown):
        times, scores = track.series.samples()
        ax.stackplot(times, *scores.T, labels=EMOTIONS, colors=colors)
        ax.set(ylabel=f"face {tid}" + ("\n(short)" if track.short else ""), ylim=(0, 1))
    for ax in axes:
        for cut in result.cuts:
            ax.axvline(cut.time, color="black", linestyle="--", linewidth=0.8)
    axes[0].set_xlim(0, end)
    if shown:
        axes[0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    else:
        axes[0].text(0.5, 0.5, "no face found", ha="center", va="center", transform=axes[0].transAxes)
    axes[-1].set_xlabel("time (s)" + (" · dashed: scene cuts" if result.cuts else ""))
    return fig
