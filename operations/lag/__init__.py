"""Consumer-lag monitoring: collect, evaluate, keep history and expose every consumer group's lag.

Data flow: `collector.KafkaLagCollector` samples Kafka -> `evaluator.LagEvaluator` keeps a
sliding window per partition and assigns Burrow-style statuses -> `monitor.LagMonitor` keeps the
latest `model.GroupLag` snapshot and writes `history.PostgresLagHistory` ->
`exposition.LagExposition` serves it to Prometheus; the API and `fairstream lag` read it.
"""
