"""Coded concepts written into the DICOM outputs, with the standard each comes from.

Finding types are taken from the breast imaging context groups of DICOM PS3.16 (CID 6014 / 6016
"Breast Imaging / Mammography Finding", CID 6054) where one exists, and from the Mammography CAD
template (TID 4000) for the calcification cluster. Every code here is also in pydicom's code
dictionary, so the meanings below are the ones the standard publishes.
"""

from __future__ import annotations

from highdicom.sr import CodedConcept
from pydicom.sr.codedict import codes

from mammocad.structures import FindingLabel, Laterality

#: SCT 4147007 "Mass"; DCM 111105 "Calcification Cluster" (TID 4000); SCT 129792006
#: "Architectural distortion of breast"; SCT 129790003 "Asymmetric breast tissue"; SCT 129797000
#: "Skin thickening of breast"; SCT 443808008 "Intramammary lymph node".
FINDING_TYPES: dict[FindingLabel, CodedConcept] = {
    FindingLabel.MASS: CodedConcept("4147007", "SCT", "Mass"),
    FindingLabel.CALCIFICATION: CodedConcept("111105", "DCM", "Calcification Cluster"),
    FindingLabel.ARCHITECTURAL_DISTORTION: CodedConcept(
        "129792006", "SCT", "Architectural distortion of breast"
    ),
    FindingLabel.ASYMMETRY: CodedConcept("129790003", "SCT", "Asymmetric breast tissue"),
    FindingLabel.SKIN_THICKENING: CodedConcept("129797000", "SCT", "Skin thickening of breast"),
    FindingLabel.LYMPH_NODE: CodedConcept("443808008", "SCT", "Intramammary lymph node"),
}

#: SCT 76752008 "Breast": the anatomic location of every finding (with its laterality).
BREAST = CodedConcept("76752008", "SCT", "Breast")
#: SCT 7771000 "Left", SCT 24028007 "Right" (CID 244 "Laterality").
LATERALITY: dict[Laterality, CodedConcept] = {
    Laterality.L: CodedConcept("7771000", "SCT", "Left"),
    Laterality.R: CodedConcept("24028007", "SCT", "Right"),
}
#: SCT 71651007 "Mammography": the procedure reported (TID 1500 row 4).
MAMMOGRAPHY = CodedConcept("71651007", "SCT", "Mammography")
#: DCM 111047 "Probability of cancer" (CID 6048), the name of every probability measurement.
PROBABILITY_OF_CANCER = CodedConcept(
    codes.DCM.ProbabilityOfCancer.value, "DCM", codes.DCM.ProbabilityOfCancer.meaning
)
#: UCUM "1" "no units": a probability is a dimensionless ratio in [0, 1].
NO_UNITS = CodedConcept("1", "UCUM", "no units")
#: DCM 121071 "Finding": the concept name of the text items listing images not processed.
FINDING = CodedConcept("121071", "DCM", "Finding")
#: DCM 121073 "Impression" (CID 7002 "Diagnostic Imaging Report Element", CID 6053 "Breast
#: Imaging Report Element"): the study's suspicion category, the report's interpretation of
#: its probability of cancer. PS3.16 has no "level of suspicion" concept, and CID 6053's
#: "Overall Assessment" would claim a BI-RADS category, which mammocad does not give.
IMPRESSION = CodedConcept(codes.DCM.Impression.value, "DCM", codes.DCM.Impression.meaning)
#: DCM 121065 "Procedure Description" (CID 7002): the study status (complete / partial /
#: rejected) says which views of the examination the analysis covered.
PROCEDURE_DESCRIPTION = CodedConcept(
    codes.DCM.ProcedureDescription.value, "DCM", codes.DCM.ProcedureDescription.meaning
)
#: DCM 121106 "Comment": the CC/MLO link of a finding ("Same lesion as <id> in the other
#: view"). Not "Finding": in a finding's group 121071 already names the finding type (TID 1501),
#: and a reader matching the concept name alone would take the link for a second finding type.
COMMENT = CodedConcept(codes.DCM.Comment.value, "DCM", codes.DCM.Comment.meaning)


def finding_type(label: str) -> CodedConcept:
    """The coded finding type of a result-schema ``label`` (``mass``, ``calcification``…)."""
    return FINDING_TYPES[FindingLabel(label)]
