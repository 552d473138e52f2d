"""A three-step workflow run by two worker processes through the persistence server.

    sayiir-server serve --listen 127.0.0.1:50051 --backend memory://
    python -m examples.three_step_workflow.worker --target 127.0.0.1:50051 --worker-id a --tags light \\
        --until-completed order-1 &
    python -m examples.three_step_workflow.worker --target 127.0.0.1:50051 --worker-id b --tags heavy \\
        --until-completed order-1 &
    python -m examples.three_step_workflow.starter --target 127.0.0.1:50051 --run order-1=3,1,2

parse ("3,1,2" → [3, 1, 2]) → square ([9, 1, 4], tagged "heavy": only worker b takes it) → total (14).
Each worker prints one JSON line per step it ran.
"""
