using static TorchSharp.torch;

namespace Diffuse.Tests.Editing;

internal static class Tensors
{
    /// <summary>Same shape and every element equal.</summary>
    internal static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();
}
