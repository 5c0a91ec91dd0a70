"""The table a study prints at its end."""

from pathlib import Path

from knowlab.study.live import LiveTable


def test_an_all_cached_study_prints_a_sentence_not_an_empty_table(tmp_path: Path):
    text = LiveTable(tmp_path, []).render()
    assert "No evaluation ran this time" in text and "QA exact match" not in text


def test_a_finished_evaluation_gets_a_row_under_the_header(tmp_path: Path):
    table = LiveTable(tmp_path, [])
    table.lines.append("augmentation  single-s0  97.0  10.4")
    text = table.render()
    assert text.index("QA exact match") < text.index(table.head) < text.index("single-s0")
