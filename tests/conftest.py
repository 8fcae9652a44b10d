pytest_plugins = ["tests.fixtures.hf", "tests.fixtures.services", "tests.fixtures.stack"]
