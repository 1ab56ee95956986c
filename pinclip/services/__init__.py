"""Local real services for development and CI: Kafka (KRaft) and Neo4j from Maven Central run
with plain `java`, and a real Milvus server from the PyPI package `milvus`."""
