"""Run the hubcli command line with this machine's CPU split into N logical devices.

``MirroredStrategy`` on a machine without GPUs mirrors over the logical CPU devices, so
``python -m tests.helpers.split_cpu 2 retrain-images ... --distribute mirrored`` trains on two
replicas, as a machine with two GPUs would. The split must happen before TensorFlow starts.
"""

from __future__ import annotations

import sys


def main() -> None:
    count, arguments = int(sys.argv[1]), sys.argv[2:]
    from hubcli import quiet_tensorflow

    quiet_tensorflow.install()
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    from hubcli.cli.app import main as hubcli_main

    sys.argv = ["hubcli", *arguments]
    hubcli_main()


if __name__ == "__main__":
    main()
