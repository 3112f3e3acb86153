-- Databases of the compose stack, created once, when the postgres volume is first initialised
-- (the postgres image runs /docker-entrypoint-initdb.d/*.sql as POSTGRES_USER, who owns them).
--
--   mlflow     MLflow's backend store: experiments, runs, registered models, aliases
--              (POSTGRES_DB: the image creates it, so it is not repeated here)
--   mlflow_auth  users and permissions of MLflow's basic-auth app (deploy/mlflow/basic_auth.ini)
--   events     the deployment-event log (registry/events.py), written by the trainer, the
--              `mlplat deploy` commands and the monitoring controller
--   inference  the inference log (serving/inference_log.py): written by the service, read by the
--              controller's canary judge and drift job
--
-- To add one to a stack that already has its volume, run the statement by hand:
--   docker compose exec postgres psql -U mlplat -d mlflow -c 'CREATE DATABASE name'
CREATE DATABASE events;
CREATE DATABASE inference;
CREATE DATABASE mlflow_auth;
