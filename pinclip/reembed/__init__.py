"""The backfill as a stream: re-embed work on a partitioned Kafka topic, a consumer group of
workers, completion from committed offsets (docs/SCALING.md, "A model change, across a group").

    pinclip backfill --version N --workers 3      # plan, run 3 workers here, move the alias
    pinclip backfill-worker --version N           # one more worker, on any machine

`work` holds the messages and the completion rule (no I/O), `planner` turns the graph into work
items, `worker` is the consumer, `group` the coordinator that moves the alias once.
"""
