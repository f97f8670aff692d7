using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Diffuse.Models;

/// <summary>Shape of the MLP denoiser; saved with every checkpoint.</summary>
/// <param name="Dimensions">Dimensions of one data vector.</param>
/// <param name="Width">Hidden width of every residual block.</param>
/// <param name="Depth">Number of residual blocks.</param>
/// <param name="TimeEmbedding">Width of the sinusoidal time embedding.</param>
/// <param name="OutputMultiplier">
/// Outputs per input dimension: 1 for a prediction of ε, x0 or v; 2 to also predict the reverse-step variance (Nichol
/// and Dhariwal 2021, §3.1), the prediction first, then the variance output. Configs saved without it load with 1.
/// </param>
public sealed record MlpConfig(int Dimensions, int Width = 128, int Depth = 3, int TimeEmbedding = 64, int OutputMultiplier = 1) : NetworkConfig
{
    /// <inheritdoc />
    public override int ClassCount => 0;

    /// <inheritdoc />
    [System.Text.Json.Serialization.JsonIgnore]
    public override int OutputFactor => OutputMultiplier;

    /// <inheritdoc />
    public override NetworkConfig WithOutputFactor(int factor) => this with { OutputMultiplier = factor };

    /// <inheritdoc />
    public override void CheckExampleShape(long[] exampleShape)
    {
        if (exampleShape.Length != 1)
            throw new DiffuseException($"the MLP takes vectors, but the data's examples have shape [{string.Join(", ", exampleShape)}]; use a U-Net for images.");
        if (exampleShape[0] != Dimensions)
            throw new DiffuseException($"the MLP was built for {Dimensions} columns but the data has {exampleShape[0]}.");
    }

    /// <inheritdoc />
    public override DiffusionNetwork Create(int trainedTimesteps) => new MlpNetwork(this, trainedTimesteps);

    /// <summary>Throws a <see cref="DiffuseException"/> naming the first invalid value.</summary>
    public override void Validate()
    {
        if (Dimensions < 1) throw new DiffuseException($"the data must have at least one dimension (got {Dimensions}).");
        ConfigLimits.Require(Param.Of("MlpConfig.Dimensions"), Dimensions, 1, ConfigLimits.MaxColumns);
        ConfigLimits.Require(Param.Of("MlpConfig.Width"), Width, 1, ConfigLimits.MaxWidth);
        ConfigLimits.Require(Param.Of("MlpConfig.Depth"), Depth, 1, ConfigLimits.MaxDepth);
        if (TimeEmbedding < 2 || TimeEmbedding % 2 != 0) throw new DiffuseException($"the time embedding width must be even and at least 2 (got {TimeEmbedding}).");
        ConfigLimits.Require(Param.Of("MlpConfig.TimeEmbedding"), TimeEmbedding, 2, ConfigLimits.MaxWidth);
        if (OutputMultiplier is not (1 or 2)) throw new DiffuseException($"the MLP's output multiplier must be 1 or 2 (got {OutputMultiplier}).");
        ConfigLimits.RequireParameters(ParameterCount(),
            $"the MLP ({Param.Of("MlpConfig.Width")} {Width}, {Param.Of("MlpConfig.Depth")} {Depth}, {Dimensions} columns)", $"a smaller {Param.Of("MlpConfig.Width")} or {Param.Of("MlpConfig.Depth")}");
    }

    /// <inheritdoc />
    internal override IEnumerable<(string Key, long[] Shape)> StateShapes()
    {
        long w = Width, d = Dimensions, e = TimeEmbedding;
        foreach (var p in Linear("input", d, w)) yield return p;
        foreach (var p in Linear("time_mlp.0", e, w)) yield return p;
        foreach (var p in Linear("time_mlp.2", w, w)) yield return p;
        for (int i = 0; i < Depth; i++)
        {
            yield return ($"blocks.{i}.norm.weight", [w]);
            yield return ($"blocks.{i}.norm.bias", [w]);
            foreach (var name in new[] { "fc1", "time_proj", "fc2" })
                foreach (var p in Linear($"blocks.{i}.{name}", w, w)) yield return p;
        }
        yield return ("out_norm.weight", [w]);
        yield return ("out_norm.bias", [w]);
        foreach (var p in Linear("output", w, d * OutputMultiplier)) yield return p;
    }
}

/// <summary>
/// Sinusoidal embedding of the timestep (Vaswani et al. 2017, §3.5, as used by Ho et al. 2020): for frequencies
/// ω_k = 10000^(−k/(E/2)), the embedding of t is [sin(t·ω_k), cos(t·ω_k)]. Timestep indices are first mapped to
/// t = 1000·n/T so that models with any T see the same range. An EDM network receives c_noise = ¼·ln σ instead and is
/// built for T = <see cref="Formulations.FormulationConfig.EdmEmbeddingTimesteps"/>, so that it embeds 250·c_noise.
/// </summary>
public static class TimeEmbedding
{
    /// <summary>Embeds float timestep indices <paramref name="timesteps"/> [B] of a T-step schedule into [B, <paramref name="width"/>].</summary>
    public static Tensor Sinusoidal(Tensor timesteps, int width, int trainedTimesteps)
    {
        using var scope = NewDisposeScope();
        int half = width / 2;
        var frequencies = exp(arange(half, dtype: ScalarType.Float32, device: timesteps.device) * (-Math.Log(10000.0) / half));
        var t = timesteps.to_type(ScalarType.Float32) * (1000f / trainedTimesteps);
        var angles = t.unsqueeze(1) * frequencies.unsqueeze(0);
        return cat(new[] { angles.sin(), angles.cos() }, 1).MoveToOuterDisposeScope();
    }
}

/// <summary>One residual block: h + W2·SiLU(W1·LayerNorm(h) + P·e), where e is the embedded time.</summary>
internal sealed class MlpResidualBlock : Module<Tensor, Tensor, Tensor>
{
    private readonly LayerNorm norm;
    private readonly Linear fc1;
    [ComponentName(Name = "time_proj")] private readonly Linear timeProj;
    private readonly Linear fc2;

    public MlpResidualBlock(int width, string name) : base(name)
    {
        norm = LayerNorm(width);
        fc1 = Linear(width, width);
        timeProj = Linear(width, width);
        fc2 = Linear(width, width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor h, Tensor time)
    {
        using var scope = NewDisposeScope();
        var inner = functional.silu(fc1.call(norm.call(h)) + timeProj.call(time));
        return (h + fc2.call(inner)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// An MLP denoiser for vectors of any dimension: input projection, a time MLP on the sinusoidal embedding, residual
/// blocks that each add the time features, and an output projection. Maps (z_t [B, D], timestep index [B]) to a
/// prediction [B, D] of ε, x0 or v (with <see cref="MlpConfig.OutputMultiplier"/> 2, [B, 2D]: the prediction, then the
/// variance outputs). State-dict keys are fixed snake_case names.
/// </summary>
public sealed class MlpNetwork : DiffusionNetwork
{
    private readonly MlpConfig _config;
    private readonly int _trainedTimesteps;
    [ComponentName(Name = "input")] private readonly Linear input;
    [ComponentName(Name = "time_mlp")] private readonly Sequential timeMlp;
    [ComponentName(Name = "blocks")] private readonly ModuleList<MlpResidualBlock> blocks;
    [ComponentName(Name = "out_norm")] private readonly LayerNorm outNorm;
    [ComponentName(Name = "output")] private readonly Linear output;

    /// <summary>Builds the network with the current torch random state (seed it first for reproducibility).</summary>
    public MlpNetwork(MlpConfig config, int trainedTimesteps) : base("mlp")
    {
        config.Validate();
        _config = config;
        _trainedTimesteps = trainedTimesteps;
        input = Linear(config.Dimensions, config.Width);
        timeMlp = Sequential(("0", Linear(config.TimeEmbedding, config.Width)), ("1", SiLU()), ("2", Linear(config.Width, config.Width)), ("3", SiLU()));
        blocks = new ModuleList<MlpResidualBlock>(Enumerable.Range(0, config.Depth).Select(i => new MlpResidualBlock(config.Width, $"block{i}")).ToArray());
        outNorm = LayerNorm(config.Width);
        output = Linear(config.Width, config.Dimensions * config.OutputMultiplier);
        RegisterComponents();
    }

    /// <summary>The configuration this network was built from.</summary>
    public MlpConfig Config => _config;

    /// <inheritdoc />
    public override NetworkConfig Configuration => _config;

    /// <summary>Predicts from z_t [B, D] at float timestep indices [B]; the MLP is unconditional, so <paramref name="classes"/> must be null.</summary>
    public override Tensor forward(Tensor z, Tensor timesteps, Tensor? classes)
    {
        if (classes is not null) throw new DiffuseException("class labels were given to an unconditional MLP.");
        using var scope = NewDisposeScope();
        var time = timeMlp.call(TimeEmbedding.Sinusoidal(timesteps, _config.TimeEmbedding, _trainedTimesteps));
        var h = input.call(z);
        foreach (var block in blocks) h = block.call(h, time);
        return output.call(functional.silu(outNorm.call(h))).MoveToOuterDisposeScope();
    }
}
