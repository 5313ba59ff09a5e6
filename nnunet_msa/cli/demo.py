"""placeholder, replaced by the demo implementation"""
def add_demo_arguments(p):
    pass
def run_demo(args):
    raise NotImplementedError
