"""XATL weight transfer: student configs from donors, the transfer itself, its report, and conversion."""

from .config import check_skeleton, student_config
from .convert import ConvertResult, convert, save_student
from .core import parse_copy, transfer
from .report import REPORT_FILE, TransferReport

__all__ = ["REPORT_FILE", "ConvertResult", "TransferReport", "check_skeleton", "convert", "parse_copy",
           "save_student", "student_config", "transfer"]
