from armillary.cli import main

main()
