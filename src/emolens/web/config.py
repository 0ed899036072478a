"""Default settings; ``create_app(test_config)`` or ``emolens serve`` flags override them."""

IMAGE_MODEL = "accurate"  # a shipped model's name or an ONNX file: images
STREAM_MODEL = "accurate"  # videos and the live camera (requests may choose another shipped model by name)
DETECTOR = "retinaface"
DETECTOR_OPTIONS: dict = {}  # e.g. {"max_side": 320}: `emolens serve --detect-size 320` (video, live, cameras)
PHOTO_DETECT_SIZE = None  # uploaded images' detection size; None: DETECTOR_OPTIONS' max_side if set, else 1280
DATA_DIR = None  # None: the user's data directory (platformdirs)
TOKEN = None  # or the EMOLENS_TOKEN environment variable; None = open
MAX_CONTENT_LENGTH = 200 * 1024 * 1024  # bytes per request (413 above)
MAX_IMAGE_PIXELS = 50_000_000
MAX_VIDEO_SECONDS = 600
MAX_VIDEO_PIXELS = 3840 * 2160  # 4K; the annotated copy is scaled to MAX_OUTPUT_PIXELS
MAX_OUTPUT_PIXELS = 1920 * 1080
MAX_WORKERS = 1  # video jobs at once, more wait; 0: only queue them (a process sharing DATA_DIR runs them)
JOB_RETENTION_DAYS = 7
LIVE_MAX_FRAME_BYTES = 2 * 1024 * 1024
SOCK_SERVER_OPTIONS = {"ping_interval": 25}
MAX_CAMERAS = 16  # cameras the server watches at once (each costs a reader and its recognition)
CAMERA_TIMEOUT_S = 10.0  # seconds to open a camera's stream, and without data before it counts as dropped
CAMERAS_AUTOSTART = None  # resume cameras left running at start-up; None: yes, except under TESTING
