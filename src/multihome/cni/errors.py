"""CNI errors as exceptions.

Every failure a plugin, the engine or the CLI can report is one of these. The
mapping to the CNI error JSON (`{"cniVersion","code","msg","details"}`) happens in
exactly one place: :func:`CNIError.to_dict`, called by the skel.
"""

from __future__ import annotations

from typing import Any, ClassVar

from multihome.errors import MultihomeError

# Well-known codes from the CNI spec; 8 and 999 are libcni's own.
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODING_FAILURE = 6
INVALID_NETWORK_CONFIG = 7
INVALID_NETNS = 8
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50
LIMITED_CONNECTIVITY = 51
INTERNAL = 999


class CNIError(MultihomeError):
    """An error with a CNI code and a sentence a person can act on."""

    code: ClassVar[int] = INTERNAL

    def __init__(self, msg: str, details: str = "", *, code: int | None = None) -> None:
        super().__init__(msg, details)
        if code is not None:
            self.code = code  # type: ignore[misc]

    def reworded(self, msg: str) -> CNIError:
        """The same error (class, code, details) with another message: for callers that
        add where it happened. Subclasses may take other constructor arguments, so the
        error is copied rather than built again (copy.copy would call the constructor)."""
        out = type(self).__new__(type(self))
        out.__dict__.update(self.__dict__)
        out.args = (msg,)
        out.msg = msg
        return out

    def to_dict(self, cni_version: str) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CNIError:
        """Rebuild an error that an external plugin printed."""
        code = data.get("code")
        err_cls = _BY_CODE.get(code, CNIError) if isinstance(code, int) else CNIError
        err = err_cls(str(data.get("msg", "")), str(data.get("details", "")))
        if isinstance(code, int):
            err.code = code  # type: ignore[misc]
        return err


class IncompatibleVersion(CNIError):
    code = INCOMPATIBLE_VERSION


class UnsupportedField(CNIError):
    code = UNSUPPORTED_FIELD


class UnknownContainer(CNIError):
    code = UNKNOWN_CONTAINER


class InvalidEnvironment(CNIError):
    code = INVALID_ENVIRONMENT


class IOFailure(CNIError):
    code = IO_FAILURE


class DecodingFailure(CNIError):
    code = DECODING_FAILURE


class InvalidConfig(CNIError):
    code = INVALID_NETWORK_CONFIG


class InvalidNetns(CNIError):
    code = INVALID_NETNS


class TryAgainLater(CNIError):
    code = TRY_AGAIN_LATER


class NotAvailable(CNIError):
    code = NOT_AVAILABLE


class LimitedConnectivity(CNIError):
    code = LIMITED_CONNECTIVITY


class InternalError(CNIError):
    code = INTERNAL


_BY_CODE: dict[int, type[CNIError]] = {
    c.code: c
    for c in (
        IncompatibleVersion,
        UnsupportedField,
        UnknownContainer,
        InvalidEnvironment,
        IOFailure,
        DecodingFailure,
        InvalidConfig,
        InvalidNetns,
        TryAgainLater,
        NotAvailable,
        LimitedConnectivity,
        InternalError,
    )
}
