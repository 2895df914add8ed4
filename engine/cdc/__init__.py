"""Change Data Capture over Salesforce's Pub/Sub API (decision 0026): the gRPC client
(:mod:`engine.cdc.stream`) and the decoding of change events into change rows
(:mod:`engine.cdc.decode`). A stage beside ``engine.extract``: it imports no other stage."""
