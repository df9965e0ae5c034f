"""Sentences made from the figures, and the checks of the prose against them (N1).

The sentences come from tasks/templates/report_facts.j2, one macro a fact the form names; a coordinator's text may
place one where it likes with its placeholder ({{依申请公开}}), and a section opens with its own. The prose is read
for the figures it states (共收到申请3件) and each is compared with the tables: the 息县 2021 report says 办理3件
where its table 三 concluded 5.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from schemas.form_spec import FormSpec, NarrativeCheck, SectionPrompt
from tasks.report_document import Paragraph, ParagraphStyle
from tasks.report_measures import Measure

TEMPLATES = Path(__file__).parent / "templates"
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_SENTENCE_END = "。；！？"
_LONGEST_QUOTE = 80  # a longer sentence is quoted around its figure only


@dataclass(frozen=True)
class Finding:
    """Something the coordinator should look at before publishing; never a reason to refuse the report."""

    kind: str  # narrative-figure, prompt, placeholder, unknown-placeholder, cross-year, sum-rule, designated
    message: str


def fact(fact_id: str, measures: Mapping[str, Measure]) -> str:
    """The sentences of one fact (a macro of report_facts.j2) from these measures."""
    groups: dict[str, list[Measure]] = {}
    for measure in measures.values():
        if measure.spec.group:
            groups.setdefault(measure.spec.group, []).append(measure)
    macro = getattr(_facts_module(), fact_id)
    return str(macro(measures, groups)).strip()


@lru_cache(maxsize=1)
def _facts_module() -> Any:
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, autoescape=False,
                      keep_trailing_newline=False)
    return env.get_template("report_facts.j2").module


def comparison(measures: Iterable[Measure]) -> str:
    """与上年相比，…增加2件（增长66.7%），…减少1件（下降50.0%），…持平。 ('' when last year is unknown)."""
    changed, same = [], []
    for measure in measures:
        text = measure.change_text()
        if text == "持平":
            same.append(measure.spec.label)
        elif text:
            changed.append(f"{measure.spec.label}{text}")
    if not changed and not same:
        return ""
    parts = changed + ([f"{'、'.join(same)}与上年持平"] if same else [])
    return f"与上年相比，{'，'.join(parts)}。"


def fill_placeholders(paragraphs: Sequence[Paragraph], facts: Mapping[str, str]) -> tuple[list[Paragraph],
                                                                                          list[Finding]]:
    """The prose with each {{placeholder}} replaced by its sentences (facts: placeholder -> text); an unknown one
    is left visible and reported."""
    findings: list[Finding] = []
    result = []
    for paragraph in paragraphs:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in facts:
                return facts[name]
            known = "、".join("{{" + n + "}}" for n in facts)
            findings.append(Finding("unknown-placeholder",
                                    f"文字中的“{{{{{name}}}}}”不是可用的数据占位符（可用：{known}），已原样保留。"))
            return match.group(0)

        text = _PLACEHOLDER.sub(replace, paragraph.text)
        result.append(paragraph if text == paragraph.text else paragraph.model_copy(update={"text": text}))
    return result, findings


def check_narrative(paragraphs: Iterable[Paragraph], measures: Mapping[str, Measure],
                    checks: Sequence[NarrativeCheck]) -> list[Finding]:
    """N1: every figure the prose states that is none of the table figures it may mean."""
    findings = []
    for paragraph in paragraphs:
        if paragraph.style is ParagraphStyle.FACT:
            continue  # made from the figures
        for check in checks:
            for match in re.finditer(check.pattern, paragraph.text):
                stated = Decimal(match.group(1).replace(",", ""))
                candidates = [measures[m] for m in check.measures]
                if all(stated != c.value for c in candidates):
                    table = "、".join(f"{c.spec.name}{c}{c.spec.unit}" for c in candidates)
                    quoted = _snippet(paragraph.text, match)
                    findings.append(Finding("narrative-figure", f"{check.title}：文字为“{quoted}”，表中{table}。"))
    return findings


def missing_prompt(prompt: SectionPrompt, paragraphs: Iterable[Paragraph]) -> bool:
    """Whether the section fails to say what the prompt asks (it lacks one of the keywords)."""
    text = "".join(p.text for p in paragraphs)
    return not all(keyword in text for keyword in prompt.keywords)


def section_measures(form: FormSpec, measures: Mapping[str, Measure], sheet_id: str) -> list[Measure]:
    """The measures compared with last year whose cells are all on this sheet, in the form's order."""
    return [m for m in measures.values()
            if m.spec.compare and all(form.cell_by_key[k].sheet == sheet_id for k in m.spec.cells)]


def _snippet(text: str, match: re.Match[str]) -> str:
    """The sentence that states the figure (or, in a long one, the words around it)."""
    start = max((text.rfind(mark, 0, match.start()) for mark in _SENTENCE_END), default=-1) + 1
    ends = [i for i in (text.find(mark, match.end()) for mark in _SENTENCE_END) if i >= 0]
    end = min(ends) + 1 if ends else len(text)
    if end - start > _LONGEST_QUOTE:
        start, end = max(start, match.start() - 20), min(end, match.end() + 20)
        return f"…{text[start:end]}…"
    return text[start:end]
