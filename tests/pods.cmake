# Pod-like cluster tests (issue 8): nodes in their own network/UTS namespaces, needs root.
replboot_add_integration_test(pods.cluster ${PROJECT_SOURCE_DIR}/tests/pods/pods_test.py LABELS pods TIMEOUT 900)
