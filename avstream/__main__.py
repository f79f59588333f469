from avstream.cli import main

main()
