from botctl.cli.app import main

main()
