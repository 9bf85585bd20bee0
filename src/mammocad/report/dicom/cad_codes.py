"""Coded concepts of the Mammography CAD SR (DICOM PS3.16 TID 4000 and its sub-templates).

Every concept is taken from pydicom's code dictionaries (``pydicom.sr.codedict.codes``), which
are generated from the DICOM standard (PS3.16 Annex D "DCM" codes and the context groups), so
each value/scheme/meaning below is the standard's; the context group each value is drawn from
is named beside it and was checked against ``pydicom.sr._cid_dict`` (PS3.16 2024 edition).
"""

from __future__ import annotations

from highdicom.sr import CodedConcept
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from mammocad.structures import FindingLabel, Laterality, ViewPosition


def _coded(code: Code) -> CodedConcept:
    # pydicom keeps the standard's zero-width spaces ("Impression/\u200bRecommendation"), which
    # the default character set (ISO_IR 6) cannot encode
    return CodedConcept(code.value, code.scheme_designator, code.meaning.replace("\u200b", ""))


# Concept names of the templates' rows (DCM, PS3.16 Annex D).
#: TID 4000 row 1, the root container.
MAMMOGRAPHY_CAD_REPORT = _coded(codes.DCM.MammographyCADReport)  # 111036
#: TID 4000 row 3.
IMAGE_LIBRARY = _coded(codes.DCM.ImageLibrary)  # 111028
#: TID 4001 row 1 (value from CID 6047).
CAD_PROCESSING_AND_FINDINGS_SUMMARY = _coded(codes.DCM.CADProcessingAndFindingsSummary)  # 111017
#: TID 4000 rows 7 and 9 (values from CID 6042 "Result Status").
SUMMARY_OF_DETECTIONS = _coded(codes.DCM.SummaryOfDetections)  # 111064
SUMMARY_OF_ANALYSES = _coded(codes.DCM.SummaryOfAnalyses)  # 111065
#: TID 4015 row 1 / TID 4016 row 1.
SUCCESSFUL_DETECTIONS = _coded(codes.DCM.SuccessfulDetections)  # 111063
SUCCESSFUL_ANALYSES = _coded(codes.DCM.SuccessfulAnalyses)  # 111062
#: TID 4015 row 3 / TID 4016 row 3: the algorithms that failed (on the images refused).
FAILED_DETECTIONS = _coded(codes.DCM.FailedDetections)  # 111025
FAILED_ANALYSES = _coded(codes.DCM.FailedAnalyses)  # 111024
#: TID 4017 row 1 / TID 4018 row 1.
DETECTION_PERFORMED = _coded(codes.DCM.DetectionPerformed)  # 111022
ANALYSIS_PERFORMED = _coded(codes.DCM.AnalysisPerformed)  # 111004
#: TID 4019 rows 1-3.
ALGORITHM_NAME = _coded(codes.DCM.AlgorithmName)  # 111001
ALGORITHM_VERSION = _coded(codes.DCM.AlgorithmVersion)  # 111003
ALGORITHM_PARAMETERS = _coded(codes.DCM.AlgorithmParameters)  # 111002
#: TID 4003 row 1.
INDIVIDUAL_IMPRESSION = _coded(codes.DCM.IndividualImpressionRecommendation)  # 111034
#: TID 4003 row 2 and TID 4006 row 2 (values from CID 6034).
RENDERING_INTENT = _coded(codes.DCM.RenderingIntent)  # 111056
#: TID 4006 row 1 (value from CID 6014).
SINGLE_IMAGE_FINDING = _coded(codes.DCM.SingleImageFinding)  # 111059
#: TID 4006 rows "Certainty of Finding" and "Probability of cancer" (units %, 0-100).
CERTAINTY_OF_FINDING = _coded(codes.DCM.CertaintyOfFinding)  # 111012
PROBABILITY_OF_CANCER = _coded(codes.DCM.ProbabilityOfCancer)  # 111047
#: TID 4021 rows 1 and 3.
CENTER = _coded(codes.DCM.Center)  # 111010
OUTLINE = _coded(codes.DCM.Outline)  # 111041
#: TID 4002 "Impression Description" (TEXT).
IMPRESSION_DESCRIPTION = _coded(codes.DCM.ImpressionDescription)  # 111033
#: TID 4020 acquisition context rows.
IMAGE_LATERALITY = _coded(codes.DCM.ImageLaterality)  # 111027
IMAGE_VIEW = _coded(codes.DCM.ImageView)  # 111031
PATIENT_ORIENTATION_ROW = _coded(codes.DCM.PatientOrientationRow)  # 111044
PATIENT_ORIENTATION_COLUMN = _coded(codes.DCM.PatientOrientationColumn)  # 111043
STUDY_DATE = _coded(codes.DCM.StudyDate)  # 111060
STUDY_TIME = _coded(codes.DCM.StudyTime)  # 111061
CONTENT_DATE = _coded(codes.DCM.ContentDate)  # 111018
CONTENT_TIME = _coded(codes.DCM.ContentTime)  # 111019
HORIZONTAL_PIXEL_SPACING = _coded(codes.DCM.HorizontalPixelSpacing)  # 111026
VERTICAL_PIXEL_SPACING = _coded(codes.DCM.VerticalPixelSpacing)  # 111066

#: UCUM units of the NUM items: "%" for certainties and probabilities (TID 4006), "mm" for
#: pixel spacing (TID 4020).
PERCENT = _coded(codes.UCUM.Percent)
MILLIMETER = CodedConcept("mm", "UCUM", "millimeter")

# CID 6047 "CAD Processing and Findings Summary".
ALL_SUCCEEDED_WITH_FINDINGS = _coded(codes.DCM.AllAlgorithmsSucceededWithFindings)  # 111242
ALL_SUCCEEDED_WITHOUT_FINDINGS = _coded(codes.DCM.AllAlgorithmsSucceededWithoutFindings)  # 111241
NOT_ALL_SUCCEEDED_WITH_FINDINGS = _coded(codes.DCM.NotAllAlgorithmsSucceededWithFindings)  # 111244
NOT_ALL_SUCCEEDED_WITHOUT_FINDINGS = _coded(
    codes.DCM.NotAllAlgorithmsSucceededWithoutFindings
)  # 111243
NONE_SUCCEEDED_WITHOUT_FINDINGS = _coded(codes.DCM.NoAlgorithmsSucceededWithoutFindings)  # 111245

# CID 6042 "Result Status".
SUCCEEDED = _coded(codes.DCM.Succeeded)  # 111222
PARTIALLY_SUCCEEDED = _coded(codes.DCM.PartiallySucceeded)  # 111223
NOT_ATTEMPTED = _coded(codes.DCM.NotAttempted)  # 111225

# CID 6034 "Intended Use of CAD Output".
PRESENTATION_REQUIRED = _coded(
    codes.DCM.PresentationRequiredRenderingDeviceIsExpectedToPresent
)  # 111150
NOT_FOR_PRESENTATION = _coded(codes.DCM.NotForPresentationRenderingDeviceExpectedNotToPresent)
# 111152

#: CID 6043 "Mammography CAD Analysis Type": the study and breast probabilities come from the
#: analysis that forms the overall impression from the single image findings.
OVERALL_IMPRESSION_ANALYSIS = _coded(codes.DCM.OverallImpressionRecommendationAnalysis)  # 111234

#: CID 6014 "Mammography Single Image Finding" (TID 4006 row 1, TID 4017 "Detection Performed").
#:
#: * mass → SCT 129793001 "Mammography breast density": CID 6014 has no mass concept; in the
#:   BI-RADS lexicon the standard follows, a space-occupying lesion seen on ONE projection is a
#:   "density", and "Mammographic breast mass" (SCT 129788004) is a Composite Feature
#:   (CID 6016/6017), i.e. the same lesion seen on two views. A single-view detection is
#:   therefore coded as a density.
#: * calcification → SCT 129769006 "Calcification Cluster" (CID 6014; DCM 111105 of the same
#:   meaning, used in the TID 1500 SR, is not in CID 6014).
#: * architectural_distortion → SCT 129792006, skin_thickening → SCT 129797000,
#:   lymph_node → SCT 443808008 "Intramammary lymph node": all in CID 6014.
#: * asymmetry → SCT 129790003 "Asymmetric breast tissue": NOT in CID 6014 (only in CID 6016,
#:   6017 and 6054). Used as an extension of CID 6014, whose extensibility could not be
#:   verified here; the nearest CID 6014 concept would be the same "Mammography breast density"
#:   as for mass, which would make the two labels indistinguishable.
SINGLE_IMAGE_FINDING_TYPES: dict[FindingLabel, CodedConcept] = {
    FindingLabel.MASS: _coded(codes.SCT.MammographyBreastDensity),
    FindingLabel.CALCIFICATION: _coded(codes.SCT.CalcificationCluster),
    FindingLabel.ARCHITECTURAL_DISTORTION: _coded(codes.SCT.ArchitecturalDistortionOfBreast),
    FindingLabel.ASYMMETRY: _coded(codes.SCT.AsymmetricBreastTissue),
    FindingLabel.SKIN_THICKENING: _coded(codes.SCT.SkinThickeningOfBreast),
    FindingLabel.LYMPH_NODE: _coded(codes.SCT.IntramammaryLymphNode),
}

#: CID 6022 "Side" ($ImageLaterality of TID 4020).
SIDES: dict[Laterality, CodedConcept] = {
    Laterality.L: _coded(codes.SCT.LeftBreast),  # 80248007
    Laterality.R: _coded(codes.SCT.RightBreast),  # 73056007
}

#: CID 4014 "View for Mammography" ($ImageView of TID 4020). ``AT`` (axillary tail) is a view
#: modifier (CID 4015), not a view, and ``OTHER`` has no code: such images get no Image View.
VIEWS: dict[ViewPosition, CodedConcept] = {
    ViewPosition.CC: _coded(codes.SCT.CranioCaudal),  # 399162004
    ViewPosition.MLO: _coded(codes.SCT.MedioLateralObliqueProjection),  # 399368009
    ViewPosition.ML: _coded(codes.SCT.MedioLateralProjection),  # 399260004
    ViewPosition.LM: _coded(codes.SCT.LateroMedial),  # 399352003
    ViewPosition.XCCL: _coded(codes.SCT.CranioCaudalExaggeratedLaterally),  # 399192008
    ViewPosition.XCCM: _coded(codes.SCT.CranioCaudalExaggeratedMedially),  # 399101009
    ViewPosition.SIO: _coded(codes.SCT.SuperolateralToInferomedialOblique),  # 399188001
}


def single_image_finding_type(label: str) -> CodedConcept:
    """The CID 6014 finding type of a result-schema ``label`` (``mass``, ``calcification``…)."""
    return SINGLE_IMAGE_FINDING_TYPES[FindingLabel(label)]


def detection_types() -> list[CodedConcept]:
    """The distinct "Detection Performed" values (TID 4017) of mammocad's detector, in order."""
    unique: dict[tuple[str, str], CodedConcept] = {}
    for concept in SINGLE_IMAGE_FINDING_TYPES.values():
        unique.setdefault((concept.value, concept.scheme_designator), concept)
    return list(unique.values())
