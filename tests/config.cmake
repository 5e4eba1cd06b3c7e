# The config schema and YAML parsing, and the CLI's config errors.
rt_check_test(test_config ${CMAKE_CURRENT_SOURCE_DIR}/test_config.c)
rt_shell_test(cli_config_errors cli_config_errors.sh)
