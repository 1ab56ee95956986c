"""The PinCLIP trainer: data, objectives, training, cold-start evaluation.

Owns: the offline dataset format (`dataset`) and its synthetic generator (`generator`), the
dataset ⇄ graph bridge (`export_graph`), the cold-start split (`split`), graph neighbor
samplers (`neighbors`), training batches (`data`), the objectives (`losses`), the training loop
(`config`, `loop`), retrieval metrics and evaluation with baselines (`metrics`, `evaluate`) and
the promotion rule of the retrain loop (`promotion`).

May import `encoder` and `graph_store` only. Registry, backfill and the periodic retrain live in
`pinclip` (`registry`, `backfill`, `retrain`) because they need every store. Pure modules
(`dataset`, `generator`, `split`, `neighbors`, `metrics`, `promotion`) need no torch; this file
imports nothing, so `import trainer` stays light.
"""
