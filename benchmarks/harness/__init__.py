"""The benchmarks' shared set-up. For the refresh benchmarks (refresh.py, quota.py): the world (moto from
template.yaml, the Zoho stand-in, the real handlers), seeding, the measured round, its verification and
the report. Also the tables (table.py: cold_start.py, proxy.py, the refresh report) and `make dev`'s
broker over HTTP (local_broker.py: proxy.py, verification.py).

Where things run, and why. Everything is one process with one GIL unless split, and this machine has two
cores. moto costs CPU on every call (a DynamoDB UpdateItem about 6 to 10 ms), and threads coming back
from I/O queue behind it for the GIL, which added 35 to 75 ms to each 100 ms Zoho call when everything
shared one process. So:
- the Zoho stand-in runs in a child process (remote_standin: the same ZohoStandIn, served by a multiprocessing manager);
- moto's DynamoDB, two thirds of moto's CPU per refresh, runs as a moto server in a child process, and
  Secrets Manager, SQS and EventBridge in this process (mock_aws lets the DynamoDB endpoint's requests
  through). All of moto in this process, as the tests have it, gave about 25/s at C=5 instead of 32/s;
  all of it in one moto server about 28/s.
- The refresh queue is not moto's. moto's SQS recomputes every queue attribute (each a pass over every
  message) for each message sent and scans the whole queue on each receive: sending 10,000 messages
  takes about ten minutes and each receive then about 2.5 s, and it is not thread-safe (two receives can
  take one message, two deletes can undo each other). So the queue's calls are answered at botocore's
  before-call hook by FastQueue below: a standard queue with visibility timeouts, receive counts and the
  redrive to the dead-letter queue, O(1) per message and thread-safe. The broker still calls a real boto3
  client, which validates each request against the SQS model. (moto 5.2.5 still works this way.)
- moto's Secrets Manager finds a secret by scanning all of them on every call (about 3 ms a call at
  10,000 secrets, and quadratic seeding); index_moto_secrets() looks names up directly first.
moto does not enforce the Secrets Manager write quota (50 PutSecretValue a second per region); the
figures give the cap a deployment would meet.
"""
