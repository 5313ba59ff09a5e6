"""The README is what a new user reads first: short (at most 300 lines), without dated history (that is
CHANGELOG.md's and docs/results.md's), every trainer it names exists, and every document it links to is there."""
from __future__ import annotations

import re
from pathlib import Path

import nnunet_msa.training as training

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
#: nnU-Net's own trainers the README names
NNUNET_TRAINERS = {"nnUNetTrainer"}


def test_readme_is_short_and_undated() -> None:
    lines = README.splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move detail into docs/"
    dated = [line for line in lines if re.search(r"\b20\d\d-\d\d-\d\d\b", line)]
    assert not dated, f"dated history belongs in CHANGELOG.md or docs/results.md: {dated[:3]}"


def test_every_trainer_the_readme_names_exists() -> None:
    names = set(re.findall(r"\bnnUNetTrainer[A-Za-z0-9_]*", README))
    names = {n for n in names if not n.endswith("_")}  # `nnUNetTrainerMSA2_{1,5,...}epochs` written as a pattern
    names -= set(re.findall(r"\b(nnUNetTrainer\w+) = make_architecture_trainer", README))  # the user's own example
    missing = sorted(n for n in names if n not in NNUNET_TRAINERS and not hasattr(training, n))
    assert not missing, f"the README names trainers that do not exist: {missing}"


def test_every_linked_document_exists() -> None:
    links = re.findall(r"\]\(([^)#:]+)\)", README)
    assert links, "the README links no documents"
    missing = [link for link in links if not (REPO / link).exists()]
    assert not missing, f"the README links files that do not exist: {missing}"
