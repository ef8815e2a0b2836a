"""`spark-submit` runs this file: `backfills models --engine spark` in the cluster's session.

spark-submit takes a Python file, not a console script; pass the file's path:

    spark-submit --master yarn "$(python -c 'import pipelines.spark_submit as m; print(m.__file__)')"
"""

from pipelines.cli import main

if __name__ == "__main__":
    main(["models", "--engine", "spark"])
