from hubcli.cli import main

main()
