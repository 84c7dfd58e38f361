"""torch's own argument parser as the reference for the arguments fastconv's Python layer cannot
take as they are.

The public functions (fastconv.functional) take plain arguments directly: tensors, Python ints in
int64 range, lists or tuples of them. Anything else (a float, a bool, None, a tensor, a string where
ints are due, an int past int64) first goes through the torch.nn.functional function of the same
name, called on meta copies of the tensors: torch's parser then raises exactly the error torch
would (TypeError, ValueError, OverflowError), and costs nothing when it accepts the arguments,
which are then converted to plain ints (a 0-d integer tensor is an int to torch too).
"""

import functools
import inspect
import operator

import torch

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def is_plain_int(value) -> bool:
    return type(value) is int and INT64_MIN <= value <= INT64_MAX


def is_plain_ints(value) -> bool:
    """An int, or a list or tuple of ints, as torch's "int or tuple of ints" takes them."""
    kind = type(value)
    if kind is int:
        return INT64_MIN <= value <= INT64_MAX
    if kind is list or kind is tuple:
        for v in value:
            if type(v) is not int or not INT64_MIN <= v <= INT64_MAX:
                return False
        return True
    return False


def is_tensor_or_none(value) -> bool:
    return value is None or isinstance(value, torch.Tensor)


def _meta(value):
    return value.detach().to("meta") if isinstance(value, torch.Tensor) else value


def raise_like_torch(torch_function, *args, **kwargs) -> None:
    """Calls torch_function on meta copies of the tensors among args; raises what torch's parser
    raises for these arguments. Errors past the parser (shapes, which fastconv checks itself, with
    the words of torch's CPU and CUDA kernels rather than its meta ones) are not raised."""
    try:
        torch_function(*[_meta(a) for a in args], **{k: _meta(v) for k, v in kwargs.items()})
    except (TypeError, ValueError, OverflowError, IndexError) as error:
        raise error.with_traceback(None) from None
    except Exception:  # noqa: BLE001  beyond the parser: fastconv's own checks answer
        pass


def refuse_non_tensor(op_name: str, input) -> None:
    """torch's parser's TypeError for an input that is not a tensor (a module called with None):
    the cores that fastconv.nn's modules call take their arguments unparsed."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(
            f"{op_name}(): argument 'input' (position 1) must be Tensor, not {type(input).__name__}"
        )


def as_ints(value):
    """An argument torch's parser accepted, as plain ints (a list for a sequence)."""
    if isinstance(value, (list, tuple)):
        return [operator.index(v) for v in value]
    return operator.index(value)


def parsed_like(torch_function, is_plain, to_plain):
    """Decorates a public function: calls with plain arguments (is_plain(**arguments)) go straight
    to it; any other call is first made to torch_function on meta tensors, exactly as the caller
    made it (positions and keywords: they show in torch's message), and then, if torch's parser
    accepted it, goes to the function with to_plain(**arguments).

    The plain test runs on the call as made, without binding it to the signature: binding costs a
    noticeable share of a small convolution."""

    def decorate(function):
        signature = inspect.signature(function)
        names = list(signature.parameters)

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            try:
                plain = len(args) <= len(names) and is_plain(*args, **kwargs)
            except TypeError:  # a missing or unknown argument: torch's parser words it
                plain = False
            if plain:
                return function(*args, **kwargs)
            try:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
            except TypeError:
                bound = None
            if bound is not None and is_plain(**bound.arguments):
                return function(*bound.args, **bound.kwargs)
            raise_like_torch(torch_function, *args, **kwargs)
            if bound is None:
                return function(*args, **kwargs)  # Python's own error for the call
            return function(**to_plain(**bound.arguments))

        return wrapper

    return decorate
