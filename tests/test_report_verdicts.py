"""The report's plain-language verdicts on whether an effect of the paper showed."""

from knowlab.data.schema import ATTRIBUTES
from knowlab.report.verdicts import MAIN_TASKS, effect_verdict, p_probe_verdict, q_probe_vs_qa


def _p_result(acc_of, fixed_order: bool) -> dict:
    """A P-probe result whose accuracy at (task, position) is acc_of(task index, position)."""
    order = [{"attribute": a, "share": 1.0 if fixed_order else 0.17} for a in ATTRIBUTES]
    return {"accuracy": {t: [acc_of(i, k) for k in range(6)] for i, t in enumerate(MAIN_TASKS)},
            "baseline": {t: 0.05 for t in MAIN_TASKS}, "position_attributes": order}


def test_p_verdict_sees_the_diagonal_of_single_and_its_absence():
    diagonal = _p_result(lambda i, k: 0.95 if k >= i else 0.05, fixed_order=True)
    assert "it shows the paper's diagonal" in p_probe_verdict("single", diagonal)
    flat_low = _p_result(lambda i, k: 0.05, fixed_order=True)
    assert "does **not** show" in p_probe_verdict("single", flat_low)


def test_p_verdict_on_permuted_bios_judges_the_first_position():
    assert "; high from the first" in p_probe_verdict("m5p", _p_result(lambda i, k: 0.9, fixed_order=False))
    low = p_probe_verdict("m5p", _p_result(lambda i, k: 0.2, fixed_order=False))
    assert "**not** high from the first position" in low and "20.0%" in low


def test_q_probe_follows_qa_only_with_the_same_order_and_level():
    def q(acc):
        return {"accuracy": {t: acc for t in MAIN_TASKS}}

    follows = q_probe_vs_qa({"single": (q(0.05), 4.8), "m5pf": (q(0.80), 84.3)})
    assert any(line.startswith("Q-probing follows") for line in follows)
    far = q_probe_vs_qa({"single": (q(0.03), 4.8), "m5pf": (q(0.04), 84.3)})
    assert any("does **not** follow" in line and "more than 25 points" in line for line in far)
    swapped = q_probe_vs_qa({"single": (q(0.30), 4.8), "m5pf": (q(0.20), 24.3)})
    assert any("orders the models differently" in line for line in swapped)


def test_q_probe_of_a_model_without_qa_is_listed_but_not_compared():
    def q(acc):
        return {"accuracy": {t: acc for t in MAIN_TASKS}}

    # m5pf-s0 has no finetune: its 3% must not make the verdict say "more than 25 points".
    lines = q_probe_vs_qa({"single-s1": (q(0.05), 4.8), "m5pf-s1": (q(0.80), 84.3), "m5pf-s0": (q(0.03), None)})
    assert "- `m5pf-s0`: Q-probe 3.0% (mean of the six one-class-per-value tasks), no QA finetune" in lines[2]
    assert any(line.startswith("Q-probing follows") for line in lines)
    alone = q_probe_vs_qa({"m5pf-s0": (q(0.03), None)})
    assert not any("Q-probing" in line for line in alone)


def test_effect_verdict_against_the_paper_and_against_a_reference():
    assert "does **not** appear" in effect_verdict("mixed", 12.0, 86.6)
    assert "The effect appears" in effect_verdict("mixed", 50.0, 86.6)
    line = effect_verdict("celebrity", 30.0, 86.8, reference=5.0, paper_reference=4.4)
    assert "30.0% against 5.0% here, 86.8% against 4.4% in the paper. The effect appears" in line
    assert "does **not** appear" in effect_verdict("celebrity", 8.0, 86.8, reference=5.0)
