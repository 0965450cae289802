"""Stores: DynamoDB, S3 and SQS access. No business rules here."""
