from herald_server.cli import main

main()
