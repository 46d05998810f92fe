"""Where a run happens, as its ARNs say it: the region and the account, given once.

``run_pipeline`` takes ``region`` (required) and ``account_id`` (default
:data:`DEFAULT_ACCOUNT_ID`, a placeholder no real account has) and builds one :class:`Arns`;
every ARN of the run record, the steps' properties and the registry comes from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DEFAULT_ACCOUNT_ID", "Arns"]

DEFAULT_ACCOUNT_ID = "000000000000"
# The shape of an AWS region name: us-east-1, eu-west-1, ap-southeast-2, us-gov-west-1.
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")


@dataclass(frozen=True)
class Arns:
    """The region and account of a local run, and the SageMaker ARNs they make."""

    region: str
    account_id: str = DEFAULT_ACCOUNT_ID

    def __post_init__(self) -> None:
        if not isinstance(self.region, str) or not _REGION.match(self.region):
            raise ValueError(
                f"region must be an AWS region name such as 'eu-west-1', got {self.region!r}: "
                "pass the region the pipeline runs in (the ARNs in the run record and the "
                "registry name it)"
            )
        if not isinstance(self.account_id, str) or not _ACCOUNT_ID.match(self.account_id):
            raise ValueError(
                f"account_id must be a 12-digit AWS account id, got {self.account_id!r} "
                f"(the default {DEFAULT_ACCOUNT_ID} names no real account)"
            )

    def sagemaker(self, resource_type: str, name: str) -> str:
        """``arn:aws:sagemaker:<region>:<account>:<resource_type>/<name>``."""
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{resource_type}/{name}"
