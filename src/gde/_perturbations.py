"""Perturbation labels: parts of combinations, and the separator check."""

from __future__ import annotations

from collections.abc import Sequence


def split_perturbations(
    labels: Sequence[str], *, control: str, separator: str = "+"
) -> dict[str, tuple[str, ...]]:
    """The perturbed genes (or compounds) of each label; the control has none.

    Parameters
    ----------
    labels
        Perturbation labels, e.g. ``"KLF1"``, ``"KLF1+CEBPE"`` and the control label.
    control
        The control label.
    separator
        What joins the parts of a combination.

    Returns
    -------
    Label to the tuple of its parts, in the order they appear.
    """
    out = {}
    for label in dict.fromkeys(str(v) for v in labels):
        parts = () if label == control else tuple(label.split(separator))
        if any(not p.strip() for p in parts):
            raise ValueError(
                f"Perturbation '{label}' has an empty part when split at '{separator}'. "
                "Pass the separator your file uses for combinations (`separator=`)."
            )
        out[label] = parts
    return out


def check_separator(parts: dict[str, tuple[str, ...]], separator: str) -> None:
    """Raise if splitting at ``separator`` gives parts never perturbed alone.

    A combination's parts should each be a single perturbation somewhere in the screen;
    a part that is not (``'HLA'`` and ``'A'`` from ``'HLA-A'`` split at ``'-'``) means
    the separator also occurs inside names.
    """
    singles = {p[0] for p in parts.values() if len(p) == 1}
    for label, p in parts.items():
        unknown = [q for q in p if len(p) > 1 and q not in singles]
        if unknown:
            raise ValueError(
                f"Perturbation '{label}' splits at '{separator}' into {list(p)}, but "
                f"{unknown} never occur(s) as a single perturbation: the separator seems "
                "to split a gene name. Pass the separator that joins combinations "
                "(`separator=`), or, for genes perturbed only in combination, give "
                "them rows in `features=` and call the prediction tools directly."
            )
