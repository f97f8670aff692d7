using Diffuse.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Denoisers;

/// <summary>
/// The raw network behind a denoiser, seen as one function (input [B, ...], noise conditioning [B] float32, class labels
/// [B] int64 or null) → output. The noise conditioning is what the network embeds: a timestep index for
/// <see cref="NetworkDenoiser"/>, c_noise(σ) for <see cref="EdmDenoiser"/>. MLP-style networks
/// (<c>Module&lt;Tensor, Tensor, Tensor&gt;</c>, no classes) and U-Net-style ones (<c>Module&lt;Tensor, Tensor, Tensor?, Tensor&gt;</c>,
/// e.g. <see cref="Models.UNetNetwork"/>) plug in alike. Class −1 (what <see cref="ClassifierFreeGuidance"/> passes for
/// its unconditional rows) is mapped to the network's null class.
/// </summary>
public sealed class ConditionedNetwork
{
    private readonly Func<Tensor, Tensor, Tensor?, Tensor> _forward;

    private ConditionedNetwork(Func<Tensor, Tensor, Tensor?, Tensor> forward, bool takesClasses)
    {
        _forward = forward;
        TakesClasses = takesClasses;
    }

    /// <summary>Whether the network accepts class labels.</summary>
    public bool TakesClasses { get; }

    /// <summary>A network without class conditioning, called as <c>network.call(input, conditioning)</c>.</summary>
    public static ConditionedNetwork Unconditional(nn.Module<Tensor, Tensor, Tensor> network) =>
        new((input, conditioning, _) => network.call(input, conditioning), takesClasses: false);

    /// <summary>
    /// One of Diffuse's networks: class-conditional when it has classes (label −1 becomes its null class), else unconditional.
    /// </summary>
    public static ConditionedNetwork From(DiffusionNetwork network) =>
        network.ClassCount > 0 ? WithClasses(network, network.NullClass) : new((input, conditioning, _) => network.call(input, conditioning, null), takesClasses: false);

    /// <summary>
    /// A class-conditional network, called as <c>network.call(input, conditioning, classes)</c>; labels below zero become
    /// <paramref name="nullClass"/>, the label the network was trained to read as "no class" (for the U-Net,
    /// <see cref="DiffusionNetwork.NullClass"/>).
    /// </summary>
    public static ConditionedNetwork WithClasses(nn.Module<Tensor, Tensor, Tensor?, Tensor> network, long nullClass) =>
        new((input, conditioning, classes) => network.call(input, conditioning,
            classes?.masked_fill(classes < 0, nullClass)), takesClasses: true);

    /// <summary>
    /// A network seen through <paramref name="forward"/>, which receives the raw labels (−1 for "no class") and must
    /// compute what the network would: e.g. a server's pool that evaluates the rows of concurrent runs in one batch
    /// (see <see cref="DiffusionModel.ThroughNetwork"/>).
    /// </summary>
    public static ConditionedNetwork Custom(Func<Tensor, Tensor, Tensor?, Tensor> forward, bool takesClasses) => new(forward, takesClasses);

    /// <summary>Runs the network; throws a <see cref="DiffuseException"/> when labels are given to a network without class conditioning.</summary>
    public Tensor Call(Tensor input, Tensor conditioning, Tensor? classes)
    {
        if (classes is not null && !TakesClasses)
            throw new DiffuseException("class labels were given to a network without class conditioning; train a class-conditional model to use classes or guidance.");
        return _forward(input, conditioning, classes);
    }
}
