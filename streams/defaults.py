"""The deployment defaults, written once: `pinclip.settings.Settings` (what users set),
`streams.config.WorkerConfig` and `pinclip.factory.StoreConfig` (what code and tests build)
all take their defaults from here. Plain constants, so importing this costs nothing.
`MILVUS_PREFIX`/`MILVUS_ALIAS` equal `vector_store.naming.VersionNaming`'s own defaults
(tests/unit/test_settings.py checks it, and that settings and configs agree field by field).
"""

KAFKA_BOOTSTRAP = "127.0.0.1:9092"
CONSUMER_GROUP = "pinclip-worker"
NEO4J_URI = "bolt://127.0.0.1:7687"
NEO4J_USER = "neo4j"
NEO4J_DATABASE = "neo4j"
MILVUS_URI = "var/milvus.db"
MILVUS_ALIAS = "pins"
MILVUS_PREFIX = "pins_v"
MILVUS_CONSISTENCY = "Strong"
REGISTRY_URL = "var/registry"
ONNX_PROVIDER = "auto"
ONNX_THREADS = 1  # one core per batch: the most CPU-efficient on CPU; scale out with workers

TOPIC_CREATED = "pins.created"
TOPIC_REPINNED = "pins.repinned"
TOPIC_MODEL_UPDATES = "model.updates"
TOPIC_EMBEDDED = "pins.embedded"
TOPIC_DLQ = "pins.dlq"
TOPIC_REEMBED = "pins.reembed"  # backfill work: `<reembed>.v<N>` and `<reembed>.v<N>.progress`
