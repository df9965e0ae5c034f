"""Demo county for nianbao: 24 reporting units of a county modelled on 息县 (河南省信阳市).

The demo walks a whole collection campaign: one government office, ten townships/街道 and
thirteen county departments each return the statutory tables 二–四 of the
政府信息公开工作年度报告 (2021 format, 国办公开办函〔2021〕30号).  Consolidating the units'
figures reproduces, cell for cell, the tables of the real 息县人民政府2021年政府信息公开工作年度报告
(reference/xixian_2021_report.txt):

* summed cells (行政许可 17726, 行政处罚 2068, 行政强制 63, 规章 0/0/0, the whole of table 3
  and table 4) add up over all units to the seed's figures;
* cells consolidated from one designated unit (行政规范性文件 12/0/19 and 行政事业性收费
  309.0263 万元) are reported by the county government office G001, whose fee figure is the
  county-wide compilation of the fees that a handful of departments report themselves.

Everything except those county totals is invented: the split between units, contact persons,
e-mail addresses (example.gov.cn) and phone numbers are fictitious demo data.
"""

from decimal import Decimal

COUNTY_NAME = "息县"

# ---------------------------------------------------------------------------
# Units
# ---------------------------------------------------------------------------


def _unit(code: str, name: str, kind: str, contact: str, phone: str) -> dict[str, str]:
    """One unit record; the e-mail address is derived from the code."""
    return {
        "code": code,
        "name": name,
        "kind": kind,
        "contact": contact,
        "email": f"{code.lower()}@xixian.example.gov.cn",
        "phone": phone,
    }


UNITS: list[dict[str, str]] = [
    _unit("G001", "息县人民政府办公室", "government_office", "王建国", "0376-5922301"),
    # Townships and 街道 (names of real 息县 乡镇/街道, people and numbers invented)
    _unit("T001", "谯楼街道", "township", "李红梅", "0376-5921416"),
    _unit("T002", "龙湖街道", "township", "张志强", "0376-5937208"),
    _unit("T003", "淮河街道", "township", "刘晓燕", "0376-5933512"),
    _unit("T004", "城郊乡", "township", "陈永刚", "0376-5926730"),
    _unit("T005", "项店镇", "township", "杨丽娟", "0376-5861025"),
    _unit("T006", "小茴店镇", "township", "赵海涛", "0376-5761138"),
    _unit("T007", "包信镇", "township", "黄秀英", "0376-5681209"),
    _unit("T008", "夏庄镇", "township", "周文斌", "0376-5701316"),
    _unit("T009", "东岳镇", "township", "吴春华", "0376-5811427"),
    _unit("T010", "路口乡", "township", "孙德明", "0376-5741532"),
    # County departments
    _unit("D001", "息县发展和改革委员会", "department", "徐静", "0376-5922418"),
    _unit("D002", "息县市场监督管理局", "department", "马俊峰", "0376-5925531"),
    _unit("D003", "息县自然资源局", "department", "朱玉兰", "0376-5929602"),
    _unit("D004", "息县住房和城乡建设局", "department", "胡国庆", "0376-5923317"),
    _unit("D005", "息县公安局", "department", "郭卫东", "0376-5928110"),
    _unit("D006", "息县人力资源和社会保障局", "department", "何小芳", "0376-5924726"),
    _unit("D007", "息县交通运输局", "department", "高建军", "0376-5927019"),
    _unit("D008", "息县卫生健康委员会", "department", "林淑珍", "0376-5926205"),
    _unit("D009", "息县教育体育局", "department", "罗明亮", "0376-5922843"),
    _unit("D010", "息县生态环境分局", "department", "梁晓东", "0376-5935316"),
    _unit("D011", "息县财政局", "department", "宋桂芳", "0376-5923608"),
    _unit("D012", "息县农业农村局", "department", "郑立新", "0376-5924137"),
    _unit("D013", "息县城市管理局", "department", "韩志勇", "0376-5938021"),
]

# A department that returns its tables after the deadline.
LATE_UNIT = "D012"
# A township whose first return breaks the 勾稽关系 (R1) of table 3.
BROKEN_UNIT = "T004"
# A department with applications carried over from last year, whose published 2020 report the demo imports.
CARRIED_UNIT = "D004"

# ---------------------------------------------------------------------------
# Cell keys (the 166 input cells of cells.tsv; totals are computed, not entered)
# ---------------------------------------------------------------------------

# Applicant columns of table 3, in table order (the 总计 column is computed).
APPLICANT_COLUMNS: tuple[str, ...] = (
    "natural_person",
    "commercial",
    "research",
    "public_interest",
    "legal_service",
    "other_org",
)

# Rows of table 3 that take input, in table order ((七)总计 is computed).
_APPLY_ROWS: tuple[str, ...] = (
    "new",
    "carried",
    "result.open",
    "result.partial",
    "result.deny.state_secret",
    "result.deny.law_prohibited",
    "result.deny.three_safety",
    "result.deny.third_party",
    "result.deny.internal_affairs",
    "result.deny.process_info",
    "result.deny.enforcement_file",
    "result.deny.admin_query",
    "result.unable.not_held",
    "result.unable.need_create",
    "result.unable.unclear",
    "result.reject.petition",
    "result.reject.duplicate",
    "result.reject.publication",
    "result.reject.mass_repeat",
    "result.reject.confirm",
    "result.other.no_correction",
    "result.other.no_fee",
    "result.other.other",
    "carry_next",
)

_TABLE2_INT_KEYS: tuple[str, ...] = (
    "active.rules.issued",
    "active.rules.repealed",
    "active.rules.valid",
    "active.normative.issued",
    "active.normative.repealed",
    "active.normative.valid",
    "active.license.decisions",
    "active.penalty.decisions",
    "active.coercion.decisions",
)
FEE_KEY = "active.fees.amount_wan"

_TABLE4_GROUPS: tuple[str, ...] = ("review", "litigation.direct", "litigation.after_review")
_TABLE4_COLUMNS: tuple[str, ...] = ("upheld", "corrected", "other", "pending")

INPUT_KEYS: tuple[str, ...] = (
    *_TABLE2_INT_KEYS,
    FEE_KEY,
    *(f"apply.{row}.{col}" for row in _APPLY_ROWS for col in APPLICANT_COLUMNS),
    *(f"{group}.{col}" for group in _TABLE4_GROUPS for col in _TABLE4_COLUMNS),
)

# ---------------------------------------------------------------------------
# Non-zero figures per unit (every cell not listed here is 0, the fee "0.0000")
# ---------------------------------------------------------------------------

# 行政许可 (county total 17726): mostly departments, a few hundred by 街道/乡镇 service centres.
_LICENSES: dict[str, int] = {
    "T001": 156,
    "T002": 132,
    "T003": 88,
    "T005": 24,
    "T006": 36,
    "D001": 812,
    "D002": 6120,
    "D003": 1258,
    "D004": 1436,
    "D005": 520,
    "D006": 1540,
    "D007": 1893,
    "D008": 2187,
    "D009": 389,
    "D010": 276,
    "D012": 645,
    "D013": 214,
}

# 行政处罚 (county total 2068): enforcement departments plus two 街道 after the 综合执法 reform.
_PENALTIES: dict[str, int] = {
    "T001": 41,
    "T002": 27,
    "D002": 386,
    "D003": 26,
    "D005": 1024,
    "D007": 158,
    "D008": 35,
    "D010": 97,
    "D013": 274,
}

# 行政强制 (county total 63).
_COERCIONS: dict[str, int] = {
    "D002": 17,
    "D005": 21,
    "D010": 14,
    "D013": 11,
}

# 行政事业性收费 in 万元 as reported by the collecting departments themselves; the government
# office reports the county-wide compilation (their exact sum) as the designated figure.
_FEES: dict[str, str] = {
    "D002": "18.6520",
    "D003": "126.4815",
    "D004": "87.2300",
    "D005": "45.6200",
    "D008": "31.0428",
}
_COUNTY_FEE = "309.0263"

# 行政规范性文件 (designated unit G001): issued / repealed / valid.
_NORMATIVE: tuple[int, int, int] = (12, 0, 19)

# Table 3: new applications and last year's carry-over, per unit and applicant column.
# Every application was concluded 予以公开 in the year, none carried into the next year.
_NEW_APPLICATIONS: dict[str, dict[str, int]] = {
    "T004": {"natural_person": 1},  # a villager asking about land acquisition compensation
    "D003": {"natural_person": 2},  # two requests for land-use planning approvals
}
_CARRIED_APPLICATIONS: dict[str, dict[str, int]] = {
    CARRIED_UNIT: {"commercial": 2},  # two developers' requests received in late December 2020
}


def _fee(value: str) -> str:
    """Normalise a fee to a string with exactly 4 decimals."""
    return str(Decimal(value).quantize(Decimal("0.0001")))


def _zero_figures() -> dict[str, int | str]:
    """A return with every input cell at zero."""
    figures: dict[str, int | str] = dict.fromkeys(INPUT_KEYS, 0)
    figures[FEE_KEY] = _fee("0")
    return figures


def _unit_figures(code: str) -> dict[str, int | str]:
    """Build the complete return of one unit from the non-zero tables above."""
    figures = _zero_figures()
    figures["active.license.decisions"] = _LICENSES.get(code, 0)
    figures["active.penalty.decisions"] = _PENALTIES.get(code, 0)
    figures["active.coercion.decisions"] = _COERCIONS.get(code, 0)
    if code == "G001":
        issued, repealed, valid = _NORMATIVE
        figures["active.normative.issued"] = issued
        figures["active.normative.repealed"] = repealed
        figures["active.normative.valid"] = valid
        figures[FEE_KEY] = _fee(_COUNTY_FEE)
    elif code in _FEES:
        figures[FEE_KEY] = _fee(_FEES[code])
    for column in APPLICANT_COLUMNS:
        new = _NEW_APPLICATIONS.get(code, {}).get(column, 0)
        carried = _CARRIED_APPLICATIONS.get(code, {}).get(column, 0)
        figures[f"apply.new.{column}"] = new
        figures[f"apply.carried.{column}"] = carried
        figures[f"apply.result.open.{column}"] = new + carried
    return figures


def _build_figures() -> dict[str, dict[str, int | str]]:
    """All units' returns; checks that the departments' fees add up to the office's compilation."""
    if sum(Decimal(v) for v in _FEES.values()) != Decimal(_COUNTY_FEE):
        raise ValueError("demo fee parts do not add up to the county figure")
    return {unit["code"]: _unit_figures(unit["code"]) for unit in UNITS}


FIGURES: dict[str, dict[str, int | str]] = _build_figures()


def broken_first_return(figures: dict[str, int | str]) -> dict[str, int | str]:
    """A copy of a return with the 勾稽关系 (R1) broken in the 自然人 column.

    The clerk typed the natural persons' new applications one too high, so that
    新收 + 上年结转 no longer equals 办理结果总计 + 结转下年度 in that column; every other
    cell is unchanged.
    """
    broken = dict(figures)
    value = broken["apply.new.natural_person"]
    if not isinstance(value, int):
        raise TypeError("apply.new.natural_person must be an int")
    broken["apply.new.natural_person"] = value + 1
    return broken


# ---------------------------------------------------------------------------
# The 文字部分 sheet each unit fills: its own report's sections 一, 五 and 六 (invented, plain in tone)
# ---------------------------------------------------------------------------

_WORK = {
    "government_office": "统筹推进全县政务公开工作，规范县政府门户网站“政府信息公开”栏目，组织全县政务公开业务培训",
    "township": "依托乡镇（街道）便民服务中心和村（社区）公开栏，及时公开惠民资金发放、低保评定、项目建设等信息",
    "department": "围绕本部门职责及时公开政策文件、行政许可和行政处罚结果、财政预决算等信息，做好政策解读",
}
_PROBLEMS = {
    "government_office": ("存在的问题：部分乡镇、部门信息更新不够及时。"
                          "改进措施：实行政务公开月通报，将公开工作纳入年度目标考核。"),
    "township": "存在的问题：信息公开工作人员多为兼职，业务不够熟练。改进措施：参加县政务公开业务培训，明确专人负责。",
    "department": "存在的问题：政策解读形式较为单一。改进措施：采用图解、问答等形式开展解读，提高政策知晓度。",
}


def unit_texts(code: str, year: int) -> dict[str, str]:
    """The unit's prose for its own annual report (sections 一, 五, 六), as typed into its 文字部分 sheet.

    The figures are stated by the report itself, before each table, so the prose repeats none that could disagree.
    """
    unit = next(u for u in UNITS if u["code"] == code)
    kind = unit["kind"]
    return {
        "narrative.overview": (f"{year}年，{unit['name']}认真贯彻落实《中华人民共和国政府信息公开条例》，"
                               f"{_WORK[kind]}。"),
        "narrative.problems": _PROBLEMS[kind],
        "narrative.other": "本年度无其他需要报告的事项。",
    }
