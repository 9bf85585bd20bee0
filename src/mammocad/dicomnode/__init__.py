"""``mammocad dicom-node``: a DICOM node that receives studies (C-STORE SCP), analyses each
after an idle timeout and sends the SR and Secondary Captures back (C-STORE SCU).

See docs/dicom-node.md. Modules: :mod:`.settings`, :mod:`.collector` (spool), :mod:`.scp`,
:mod:`.handler` (what is done with a study), :mod:`.queued` (through the service's job
queue), :mod:`.service` (the database and queue it uses), :mod:`.forward` (C-STORE SCU),
:mod:`.node`.
"""

from mammocad.dicomnode.handler import PipelineStudyHandler, StudyHandler, StudyHandlingError
from mammocad.dicomnode.node import DicomNode, StudyOutcome
from mammocad.dicomnode.queued import QueuedStudyHandler
from mammocad.dicomnode.settings import Destination, NodeSettings, SendSyntax

__all__ = [
    "Destination",
    "DicomNode",
    "NodeSettings",
    "PipelineStudyHandler",
    "QueuedStudyHandler",
    "SendSyntax",
    "StudyHandler",
    "StudyHandlingError",
    "StudyOutcome",
]
