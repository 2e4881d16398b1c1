from registry_tokens.cli import main

main()
