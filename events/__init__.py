"""Event contracts: Avro schemas, typed events, the codec and the topic catalog."""
