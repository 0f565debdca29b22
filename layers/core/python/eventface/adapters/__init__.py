"""Adapters: the technology behind eventface's ports (S3, DynamoDB, SNS, HTTP, the face engine)."""
