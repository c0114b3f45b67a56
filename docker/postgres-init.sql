-- The bot keeps its proposals and audit log in its own database beside Prefect's.
CREATE DATABASE concurrency_bot OWNER prefect;
