"""The contract's names: dimensions, coordinates, variables, attributes, STAC assets, storage constants.

The one place that spells them (tests check that no other module does): every
other module writes ``schema.VV``, never the string.
"""

from __future__ import annotations

CONTRACT_VERSION = "1"
CONVENTIONS = "CF-1.10"

# --- dimensions ---------------------------------------------------------------
TIME = "time"
PAIR = "pair"
#: orbits of per-orbit layers (the event means); its coordinate holds each orbit's key value
ORBIT = "orbit"
Y = "y"
X = "x"
SPATIAL_DIMS = (Y, X)
#: where the cube stacks its time series, its pairs and its per-orbit layers
STACK_DIMS = (TIME, PAIR, ORBIT)

# --- coordinates -------------------------------------------------------------
SPATIAL_REF = "spatial_ref"
PLATFORM = "platform"
ORBIT_STATE = "orbit_state"
RELATIVE_ORBIT = "relative_orbit"
ITEM_ID = "item_id"
REFERENCE_TIME = "reference_time"
ACTIVITY_TIME = "activity_time"
PAIR_RELATIVE_ORBIT = "pair_relative_orbit"

TIME_COORDS = (PLATFORM, ORBIT_STATE, RELATIVE_ORBIT, ITEM_ID)
PAIR_COORDS = (REFERENCE_TIME, ACTIVITY_TIME, PAIR_RELATIVE_ORBIT)
#: on-disk encoding of every datetime coordinate (fixed, so appends line up)
TIME_ENCODING = {"units": "seconds since 1970-01-01T00:00:00", "calendar": "proleptic_gregorian", "dtype": "int64"}

ORBIT_ASCENDING = "ascending"
ORBIT_DESCENDING = "descending"
#: per-time coordinates that can group acquisitions into orbits: one viewing geometry each, or one pass direction
ORBIT_KEYS = (RELATIVE_ORBIT, ORBIT_STATE)
#: attribute of the ``orbit`` coordinate naming the key (one of :data:`ORBIT_KEYS`) its values are
ATTR_ORBIT_KEY = "orbit_key"

# --- variables ---------------------------------------------------------------
VV = "vv"
VH = "vh"
VV_RATIO = "vv_ratio"
VH_RATIO = "vh_ratio"
VV_DIFF = "vv_diff"
VH_DIFF = "vh_diff"
VVVH = "vvvh"
VV_BEFORE = "vv_before"
VH_BEFORE = "vh_before"
VV_AFTER = "vv_after"
VH_AFTER = "vh_after"
#: the per-orbit event means written by ``features --event-date``
EVENT_MEANS = (VV_BEFORE, VH_BEFORE, VV_AFTER, VH_AFTER)
DEM = "dem"
SLOPE = "slope"
ASPECT = "aspect"
CURVATURE = "curvature"
RELEASE = "release"
PAR = "par"
LABEL = "label"
PRED_PREFIX = "pred_"
#: the time series of backscatter written by ``build``
BACKSCATTER = (VV, VH)

#: label values (uint8)
LABEL_NO = 0
LABEL_YES = 1
LABEL_UNKNOWN = 255

# --- STAC names of the source collections --------------------------------------
# Planetary Computer's collections; the demo catalog mimics them exactly.
COLLECTION_S1_RTC = "sentinel-1-rtc"
COLLECTION_DEM = "cop-dem-glo-30"
ASSET_VV = "vv"
ASSET_VH = "vh"
ASSET_DEM = "data"
#: STAC asset key -> cube variable for the backscatter assets
ASSET_TO_VARIABLE = {ASSET_VV: VV, ASSET_VH: VH}
S1_NODATA = -32768.0

#: the unit of backscatter and its changes. Kept though UDUNITS (and so CF's compliance checker, which
#: flags it under CF 1.10 section 3.1) has no logarithmic units: every SAR tool, STAC's sar extension and
#: GIS users read "dB", and the alternatives ("1" for a dimensionless ratio) would misstate log values.
UNIT_DB = "dB"

# --- global attributes ---------------------------------------------------------
ATTR_CONVENTIONS = "Conventions"
ATTR_TITLE = "title"
ATTR_VERSION = "sarcube_version"
ATTR_CONTRACT = "sarcube_contract"
ATTR_AOI = "aoi"
ATTR_START = "start"
ATTR_END = "end"
ATTR_CATALOG = "catalog"
ATTR_COLLECTIONS = "collections"
ATTR_STAC_ITEMS = "stac_items"
ATTR_HISTORY = "history"
ATTR_CREATED = "created"
REQUIRED_GLOBAL_ATTRS = (
    ATTR_CONVENTIONS,
    ATTR_TITLE,
    ATTR_VERSION,
    ATTR_AOI,
    ATTR_START,
    ATTR_END,
    ATTR_CATALOG,
    ATTR_COLLECTIONS,
    ATTR_STAC_ITEMS,
    ATTR_HISTORY,
    ATTR_CREATED,
)
#: global attrs stored as JSON text (CF attributes are strings)
JSON_GLOBAL_ATTRS = (ATTR_AOI, ATTR_COLLECTIONS, ATTR_STAC_ITEMS)
#: global attrs present only while a build is unfinished (``sarcube build`` resumes from them):
#: the steps still to write (JSON list) and the request that started the build (JSON)
ATTR_BUILD_PENDING = "sarcube_build_pending"
ATTR_BUILD_REQUEST = "sarcube_build_request"

#: variable attribute naming the parameters a feature was computed with (JSON)
ATTR_PARAMETERS = "sarcube_parameters"
#: attrs of prediction variables
ATTR_MODEL = "model"
ATTR_CHECKPOINT_SHA256 = "checkpoint_sha256"
ATTR_THRESHOLD = "threshold"
ATTR_RUN = "run"
ATTR_TTA = "tta"
#: JSON list of the pairs a prediction holds ("<reference time>/<activity time>", ISO seconds)
ATTR_PREDICTED_PAIRS = "predicted_pairs"
#: attr of a per-pair ``label`` (JSON): the label events (dated polygons) burnt into each pair, and each
#: event's pixel box on the grid (``sarcube.datacube.label_events``)
ATTR_LABEL_EVENTS = "label_events"

# --- storage -----------------------------------------------------------------
CHUNK_YX = 512
CHUNK_STACK = 1  # time, pair or orbit
#: chunk codecs a cube can be written with (``sarcube build --codec``): Blosc/zstd (the default), or gzip,
#: which every Zarr v3 reader decodes (GDAL builds without Blosc or zstd read it).
#: Level and shuffle are chosen from ``benchmarks/build.py`` (RESULT codec_* lines, demo scene vv chunks):
#: zstd level 1 with byte shuffle encodes 3.3x faster than level 5 with bit-shuffle (the first contract's)
#: and compresses better (ratio 1.62 vs 1.36); gzip 6 compresses most (2.3) but encodes ~15x slower.
CODEC_ZSTD = "zstd"
CODEC_GZIP = "gzip"
CODECS = (CODEC_ZSTD, CODEC_GZIP)
DEFAULT_CODEC = CODEC_ZSTD
ZSTD_LEVEL = 1
BLOSC_SHUFFLE = "shuffle"
GZIP_LEVEL = 6
#: global attr naming the cube's codec, so every later writer (features, add-layer, predict) uses it too
ATTR_CODEC = "sarcube_codec"
