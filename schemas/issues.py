"""What is wrong with a returned workbook, and where: the Issue value and the table of issue codes.

Every problem found in a return becomes an Issue (never an exception): a file that is not a workbook, a forged
identity, a text in a number cell and a broken 勾稽关系 alike. Units read the Chinese message; the code is stable
for programs. `category` separates a broken form (structure) from wrong figures (data): a unit is told differently
for each, and the coordinator counts them separately.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from schemas.form_spec import Severity


class Category(StrEnum):
    STRUCTURE = "structure"
    DATA = "data"


class Scope(StrEnum):
    FILE = "file"
    SHEET = "sheet"
    CELL = "cell"


class IssueKind(NamedTuple):
    title: str  # short Chinese title
    category: Category
    scope: Scope
    template: str  # Chinese message; fields of the Issue in braces


ISSUE_KINDS: dict[str, IssueKind] = {
    "not-a-workbook": IssueKind(
        "不是Excel工作簿", Category.STRUCTURE, Scope.FILE,
        "文件“{found}”不是Excel工作簿（.xlsx）。请使用下发的工作簿填报后原样报送，不要另存为其他格式。"),
    "file-too-large": IssueKind(
        "文件过大", Category.STRUCTURE, Scope.FILE,
        "文件大小为{found}字节，超过上限{expected}字节，未予读取。下发的工作簿填好后一般不超过100KB，请勿在其中插入图片或其他内容。"),
    "unsafe-archive": IssueKind(
        "压缩结构异常", Category.STRUCTURE, Scope.FILE,
        "文件“{found}”的压缩结构异常（{note}），为安全起见未予打开。下发的工作簿填好后一般不超过100KB，"
        "请使用下发的工作簿填报，在Excel或WPS中直接保存后报送，不要在其中插入大量内容。"),
    "unsafe-xml": IssueKind(
        "含有不安全的XML内容", Category.STRUCTURE, Scope.FILE,
        "文件“{found}”中的“{note}”含有文档类型定义（DTD/实体声明），为安全起见未予读取。Excel和WPS保存的工作簿"
        "不会含有这种内容，请使用下发的工作簿填好后在Excel或WPS中直接保存，再报送。"),
    "macro-workbook": IssueKind(
        "含有宏", Category.STRUCTURE, Scope.FILE,
        "文件“{found}”含有宏（{note}），系统不打开含宏的文件。请在Excel中点“文件→另存为”，保存类型选"
        "“Excel工作簿（*.xlsx）”，再报送另存的.xlsx文件。"),
    "encrypted-workbook": IssueKind(
        "设置了密码", Category.STRUCTURE, Scope.FILE,
        "文件“{found}”{note}，系统无法读取。请在Excel中打开后点“文件→信息→保护工作簿→用密码进行加密”，"
        "清空密码并保存（WPS：“文件→文档加密→密码加密”，清空打开密码），再报送。"),
    "other-format": IssueKind(
        "文件格式不对", Category.STRUCTURE, Scope.FILE,
        "文件“{found}”是{note}，不是下发的Excel工作簿（.xlsx），系统无法读取。请在下发的.xlsx工作簿中填报，"
        "保存类型选“Excel工作簿（*.xlsx）”后报送，不要另存为其他格式。"),
    "corrupt-workbook": IssueKind(
        "工作簿已损坏", Category.STRUCTURE, Scope.FILE,
        "工作簿无法打开，文件可能已损坏或未完整传送（{note}）。请重新保存后再报送。"),
    "unknown-workbook": IssueKind(
        "不是下发的填报工作簿", Category.STRUCTURE, Scope.FILE,
        "该工作簿不是本系统下发的填报表（缺少身份信息）。请使用下发给本单位的工作簿填报，不要新建或复制表格。"),
    "bad-signature": IssueKind(
        "身份信息被改动", Category.STRUCTURE, Scope.FILE,
        "工作簿的身份信息校验不通过（签名不符），可能被改动或来自他处。请使用下发给本单位的原工作簿填报。"),
    "wrong-campaign": IssueKind(
        "不属于本次填报", Category.STRUCTURE, Scope.FILE,
        "该工作簿属于{found}，不是本次（{expected}）的填报表。请使用本次下发的工作簿填报。"),
    "wrong-form-version": IssueKind(
        "表格版本不符", Category.STRUCTURE, Scope.FILE,
        "工作簿的表格版本为{found}，本次要求{expected}。请使用本次下发的工作簿填报。"),
    "unknown-unit": IssueKind(
        "单位不在名单内", Category.STRUCTURE, Scope.FILE,
        "工作簿所属单位“{found}”不在本次填报名单内。"),
    "wrong-unit": IssueKind(
        "不是本单位的工作簿", Category.STRUCTURE, Scope.FILE,
        "该工作簿下发给“{found}”，不是本单位（{expected}）的填报表。请使用下发给本单位的工作簿填报。"),
    "missing-sheet": IssueKind(
        "缺少工作表", Category.STRUCTURE, Scope.SHEET,
        "工作簿缺少工作表“{sheet}”。请使用下发的工作簿，不要删除或重命名工作表。"),
    "missing-name": IssueKind(
        "单元格名称缺失", Category.STRUCTURE, Scope.CELL,
        "找不到单元格“{label}”（名称 {field}）：{note}。请使用下发的工作簿，不要删除行列或名称。"),
    "missing-names": IssueKind(
        "多个单元格名称缺失", Category.STRUCTURE, Scope.SHEET,
        "工作表“{sheet}”中有{found}个需填写的单元格找不到，如{note}，多半是删除了行、列或名称。请使用下发的工作簿"
        "填写，不要删除行列或名称。"),
    "merged-input": IssueKind(
        "填报单元格被合并", Category.STRUCTURE, Scope.CELL,
        "工作表“{sheet}”的单元格区域{cell}被合并，其中{note}个需填写的单元格（如“{label}”）因此无法填写或"
        "数字已丢失。请取消合并（选中该区域，再点一次“合并后居中”），逐格填写后报送。"),
    "empty-return": IssueKind(
        "表格尚未填写", Category.DATA, Scope.FILE,
        "工作簿中需填写的{note}"),
    "empty-sheet": IssueKind(
        "整张表未填写", Category.DATA, Scope.SHEET,
        "工作表“{sheet}”中需填写的{note}个单元格都是空的。请逐项填写，没有数据请填0。"),
    "formula-without-value": IssueKind(
        "公式没有计算结果", Category.DATA, Scope.CELL,
        "“{label}”填的是公式（{found}），但文件中没有保存公式的计算结果，无法读取其数值。请直接填写数字；"
        "或在Excel或WPS中打开此工作簿、保存后再报送。"),
    "value-too-large": IssueKind(
        "数值过大", Category.DATA, Scope.CELL,
        "“{label}”为{found}，超过了合理上限{expected}，请核实是否多输了位数（Excel只保留15位有效数字，"
        "过长的数字会被改变）。"),
    "empty-value": IssueKind(
        "未填写", Category.DATA, Scope.CELL,
        "“{label}”未填写。没有数据请填0。"),
    "type-error": IssueKind(
        "不是数字", Category.DATA, Scope.CELL,
        "“{label}”应填数字，实际为“{found}”。请只填写阿拉伯数字，不要带单位或文字。"),
    "not-whole-number": IssueKind(
        "不是整数", Category.DATA, Scope.CELL,
        "“{label}”应为整数（件数），实际为{found}。"),
    "negative-value": IssueKind(
        "不能为负数", Category.DATA, Scope.CELL,
        "“{label}”不能为负数，实际为{found}。"),
    "total-mismatch": IssueKind(
        "合计与分项不符", Category.DATA, Scope.CELL,
        "“{label}”应等于其分项之和{expected}，实际填写{found}。请不要改动合计公式。（{rule_title}）"),
    "sum-mismatch": IssueKind(
        "勾稽关系不符", Category.DATA, Scope.CELL,
        "{rule_title}。目前{note}，两者不相等，请核对。"),
    "too-many-decimals": IssueKind(
        "小数位数过多", Category.DATA, Scope.CELL,
        "“{label}”为{found}，按要求最多保留{expected}位小数。"),
    "expected-zero": IssueKind(
        "应为0", Category.DATA, Scope.CELL,
        "“{label}”为{found}。{rule_title}，请核实。"),
    "stock-flow-mismatch": IssueKind(
        "与上年数据衔接不符", Category.DATA, Scope.CELL,
        "{rule_title}：按上年数据应为{expected}，实际为{found}，请核实（如本年开展了清理可忽略）。"),
    "carry-over-mismatch": IssueKind(
        "与上年结转不符", Category.DATA, Scope.CELL,
        "“{label}”为{found}，上年度报告的结转下年度继续办理数为{expected}，请核实。"),
}


class Issue(BaseModel):
    """One problem in one returned file, with where it is and what was expected."""

    model_config = ConfigDict(frozen=True)

    code: str = Field(description="Stable kebab-case code; a key of ISSUE_KINDS")
    severity: Severity = Severity.ERROR
    rule: str | None = Field(default=None, description="Id of the form rule, e.g. R1.total")
    rule_title: str = ""
    sheet: str | None = Field(default=None, description="Sheet name as the unit sees it")
    cell: str | None = Field(default=None, description="Excel address, e.g. D6")
    field: str | None = Field(default=None, description="Cell key in the form definition")
    label: str = ""
    expected: str = ""
    found: str = ""
    note: str = ""

    @property
    def kind(self) -> IssueKind:
        return ISSUE_KINDS[self.code]

    @property
    def category(self) -> Category:
        return self.kind.category

    @property
    def message(self) -> str:
        return self.kind.template.format(**self.model_dump())

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def public(self) -> dict[str, str | None]:
        """The issue as stored and shown: every field plus the Chinese message."""
        return {**self.model_dump(mode="json"), "message": self.message, "category": self.category.value}
