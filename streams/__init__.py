"""streams owns the real-time path: event contracts, the Faust worker and producing.

New-pin and repin events (JSON, `streams.events`) come in from Kafka; the worker validates them,
fetches images, embeds them with the served model version(s), writes Milvus and Neo4j, and emits
PinEmbedded or a DeadLetter with stage and reason. Delivery is at-least-once with idempotent
writes. Domain rules live I/O-free in `streams.pipeline`; agents in `streams.app` stay thin.

May import `encoder`, `graph_store` and `vector_store` (never torch on the serving path); never
reads the environment — `pinclip` builds a `streams.config.WorkerConfig` from settings.
"""
