"""trio_sink: record pipelines on Trio whose shutdown never loses a record.

A record is delivered, or it is reported by id: nothing in between.
"""

from ._batch import Batch as Batch
from ._batch import payloads_of as payloads_of
from ._breaker import CircuitBreaker as CircuitBreaker
from ._exceptions import AccountingError as AccountingError
from ._exceptions import ConfigError as ConfigError
from ._exceptions import TrioSinkError as TrioSinkError
from ._exceptions import UnknownSinkError as UnknownSinkError
from ._handle import PipelineHandle as PipelineHandle
from ._pipeline import Pipeline as Pipeline
from ._record import ErrorRecord as ErrorRecord
from ._record import Miss as Miss
from ._record import Record as Record
from ._record import ReplayedRecord as ReplayedRecord
from ._record import Residue as Residue
from ._record import Undecodable as Undecodable
from ._replay import replay as replay
from ._report import DeliveryReport as DeliveryReport
from ._report import ReasonKind as ReasonKind
from ._report import SourceError as SourceError
from ._report import Undelivered as Undelivered
from ._rescue import PartlyStoredError as PartlyStoredError
from ._rescue import RescueReader as RescueReader
from ._rescue import RescueReadStats as RescueReadStats
from ._rescue import RescueStatistics as RescueStatistics
from ._rescue import RescueStore as RescueStore
from ._rescue_format import RescueEntry as RescueEntry
from ._rescue_format import RescueFormatError as RescueFormatError
from ._retry import DEFAULT_RETRY as DEFAULT_RETRY
from ._retry import NO_RETRY as NO_RETRY
from ._retry import PermanentError as PermanentError
from ._retry import RetryPolicy as RetryPolicy
from ._retry import WriteTimeout as WriteTimeout
from ._route import Infra as Infra
from ._route import Route as Route
from ._serve import ExitStatus as ExitStatus
from ._serve import exit_status as exit_status
from ._serve import serve as serve
from ._sink import Sink as Sink
from ._source import Source as Source
from ._stats import DrainStatistics as DrainStatistics
from ._stats import PipelineStatistics as PipelineStatistics
from ._stats import SinkStatistics as SinkStatistics
from ._stats import SourceStatistics as SourceStatistics

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_RETRY",
    "NO_RETRY",
    "AccountingError",
    "Batch",
    "CircuitBreaker",
    "ConfigError",
    "DeliveryReport",
    "DrainStatistics",
    "ErrorRecord",
    "ExitStatus",
    "Infra",
    "Miss",
    "PartlyStoredError",
    "PermanentError",
    "Pipeline",
    "PipelineHandle",
    "PipelineStatistics",
    "ReasonKind",
    "Record",
    "ReplayedRecord",
    "RescueEntry",
    "RescueFormatError",
    "RescueReadStats",
    "RescueReader",
    "RescueStatistics",
    "RescueStore",
    "Residue",
    "RetryPolicy",
    "Route",
    "Sink",
    "SinkStatistics",
    "Source",
    "SourceError",
    "SourceStatistics",
    "TrioSinkError",
    "Undecodable",
    "Undelivered",
    "UnknownSinkError",
    "WriteTimeout",
    "__version__",
    "exit_status",
    "payloads_of",
    "replay",
    "serve",
]
