using System.Text.Json.Serialization;
using static TorchSharp.torch;

namespace Diffuse.Models;

/// <summary>
/// The shape of a denoising network, saved in every checkpoint's config.json with a <c>"kind"</c> field naming the
/// architecture (<c>mlp</c> for vectors, <c>unet</c> for images). Each kind builds its own <see cref="DiffusionNetwork"/>.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "kind")]
[JsonDerivedType(typeof(MlpConfig), "mlp")]
[JsonDerivedType(typeof(UNetConfig), "unet")]
public abstract record NetworkConfig
{
    /// <summary>Number of classes the network is conditioned on; 0 for an unconditional network.</summary>
    [JsonIgnore]
    public abstract int ClassCount { get; }

    /// <summary>
    /// Outputs per element of the input: 1 for a prediction of ε, x0 or v; 2 when the network also predicts its
    /// reverse-step variance (Nichol and Dhariwal 2021, §3.1; see <see cref="Parameterization.LearnedVariance"/>).
    /// </summary>
    [JsonIgnore]
    public abstract int OutputFactor { get; }

    /// <summary>This configuration with <see cref="OutputFactor"/> set to <paramref name="factor"/> (1 or 2).</summary>
    public abstract NetworkConfig WithOutputFactor(int factor);

    /// <summary>Throws a <see cref="DiffuseException"/> naming the first invalid value.</summary>
    public abstract void Validate();

    /// <summary>
    /// The shape of one example for data whose example shape is <paramref name="exampleShape"/>, or a
    /// <see cref="DiffuseException"/> saying why this network cannot take it.
    /// </summary>
    public abstract void CheckExampleShape(long[] exampleShape);

    /// <summary>Builds the network with the current torch random state (seed it first for reproducibility).</summary>
    /// <param name="trainedTimesteps">T of the schedule it is trained on.</param>
    public abstract DiffusionNetwork Create(int trainedTimesteps);

    /// <summary>
    /// The state-dict keys and shapes of the network this configuration builds, computed without building it (a test
    /// checks them against the built networks): the weights file's header is compared with them before any tensor is
    /// allocated. Call on a validated configuration.
    /// </summary>
    internal abstract IEnumerable<(string Key, long[] Shape)> StateShapes();

    /// <summary>
    /// The number of values (parameters and buffers) of the network this configuration builds, computed without building
    /// it; a configuration too large to count gives <see cref="long.MaxValue"/>/2.
    /// </summary>
    public long ParameterCount()
    {
        double total = 0; // in double: a hostile configuration must not overflow the count
        foreach (var (_, shape) in StateShapes())
        {
            double n = 1;
            foreach (long dim in shape) n *= dim;
            total += n;
            if (total > long.MaxValue / 2) return long.MaxValue / 2;
        }
        return (long)total;
    }

    /// <summary>The weight and bias of a linear layer (PyTorch's layout: weight [out, in]).</summary>
    private protected static IEnumerable<(string, long[])> Linear(string prefix, long inFeatures, long outFeatures) =>
        [($"{prefix}.weight", [outFeatures, inFeatures]), ($"{prefix}.bias", [outFeatures])];

    /// <summary>The weight and bias of a square-kernel convolution (weight [out, in, k, k]).</summary>
    private protected static IEnumerable<(string, long[])> Conv(string prefix, long inChannels, long outChannels, long kernel) =>
        [($"{prefix}.weight", [outChannels, inChannels, kernel, kernel]), ($"{prefix}.bias", [outChannels])];
}

/// <summary>
/// A denoising network: maps noisy examples z_t [B, …], float timestep indices [B] and optional class labels [B] (int64;
/// <c>null</c> or <see cref="NullClass"/> for unconditional) to a prediction of ε, x0 or v of z_t's shape.
/// </summary>
public abstract class DiffusionNetwork : nn.Module<Tensor, Tensor, Tensor?, Tensor>
{
    /// <summary>Names the module (the root of its state-dict keys is unnamed).</summary>
    protected DiffusionNetwork(string name) : base(name) { }

    /// <summary>The configuration the network was built from.</summary>
    public abstract NetworkConfig Configuration { get; }

    /// <summary>Number of classes; 0 for an unconditional network.</summary>
    public int ClassCount => Configuration.ClassCount;

    /// <summary>The class index that means "no class" (the unconditional prediction, and the label-dropout target).</summary>
    public int NullClass => ClassCount;

    /// <summary>Unconditional prediction: <c>call(z, timesteps, null)</c>.</summary>
    public Tensor call(Tensor z, Tensor timesteps) => call(z, timesteps, null);
}
