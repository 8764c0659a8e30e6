"""The local stack: Apache Kafka (KRaft) from Maven Central jars and Redis from the OS package."""
