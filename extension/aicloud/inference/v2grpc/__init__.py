"""The Open Inference Protocol v2 gRPC messages and service, generated from the ``.proto`` files.

``grpc_predict_v2.proto`` is KServe's protocol as published; ``triton_extensions.proto`` declares
the methods Triton adds and tritonclient calls (ModelConfig, ModelStatistics, RepositoryIndex,
ModelStreamInfer). The ``*_pb2*.py`` modules are generated, committed, and not edited by hand:
``python -m aicloud.inference.v2grpc.generate`` writes them again (grpcio-tools, the ``test``
extra), and a test checks that it gives the committed files.

Importing them registers the ``inference.*`` messages in protobuf's default pool, as
``tritonclient.grpc`` does too: the two do not load into one process.
"""
