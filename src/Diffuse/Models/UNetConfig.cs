using System.Text.Json.Serialization;

namespace Diffuse.Models;

/// <summary>
/// Shape of the U-Net denoiser (Ho et al. 2020, App. B; Nichol and Dhariwal 2021); saved with every checkpoint. The
/// network is fully convolutional, so one configuration serves any image height and width.
/// </summary>
public sealed record UNetConfig : NetworkConfig
{
    /// <summary>Largest number of GroupNorm groups (Wu and He 2018) a layer uses; fewer when they do not divide its channels.</summary>
    public const int MaxNormGroups = 32;

    /// <summary>Channels of the images (1 for grayscale, 3 for RGB, any count works).</summary>
    public required int Channels { get; init; }

    /// <summary>Channels of the first level; level l has <c>BaseChannels · ChannelMultipliers[l]</c>.</summary>
    public int BaseChannels { get; init; } = 32;

    /// <summary>One multiplier per resolution level; every level after the first halves the height and width.</summary>
    public int[] ChannelMultipliers { get; init; } = [1, 2, 2];

    /// <summary>Residual blocks per level on the way down (the way up has one more, for the extra skip connection).</summary>
    public int BlocksPerLevel { get; init; } = 2;

    /// <summary>
    /// Downsampling factors of the levels whose residual blocks are followed by self-attention: 1 is the input's
    /// resolution, 2 the first downsampled level, 4 the next (the 7×7 level of a 28×28 image with three levels).
    /// The middle block always has attention.
    /// </summary>
    public int[] AttentionResolutions { get; init; } = [4];

    /// <summary>Attention heads; must divide the channel count of every level with attention and of the middle block.</summary>
    public int Heads { get; init; } = 4;

    /// <summary>Width of the time (and class) embedding; <c>null</c> for 4 × <see cref="BaseChannels"/>.</summary>
    public int? TimeEmbedding { get; init; }

    /// <summary>Dropout probability inside every residual block during training.</summary>
    public double Dropout { get; init; } = 0.1;

    /// <summary>
    /// Condition residual blocks by scale and shift, norm(h)·(1 + s) + b (FiLM; Perez et al. 2018, as in Nichol and
    /// Dhariwal 2021) instead of adding the projected embedding before the norm.
    /// </summary>
    public bool ScaleShiftNorm { get; init; }

    /// <summary>Number of classes for class conditioning; 0 for an unconditional network.</summary>
    public int NumClasses { get; init; }

    /// <summary>Output channels per input channel: 1 for a prediction of ε, x0 or v; 2 to also predict a variance.</summary>
    public int OutputChannelsMultiplier { get; init; } = 1;

    /// <summary>The resolved width of the time embedding.</summary>
    [JsonIgnore]
    public int TimeEmbeddingWidth => TimeEmbedding ?? 4 * BaseChannels;

    /// <summary>Number of resolution levels.</summary>
    [JsonIgnore]
    public int Levels => ChannelMultipliers.Length;

    /// <summary>Channels of level <paramref name="level"/>.</summary>
    public int LevelChannels(int level) => BaseChannels * ChannelMultipliers[level];

    /// <summary>Whether level <paramref name="level"/> has self-attention after its residual blocks.</summary>
    public bool HasAttention(int level) => AttentionResolutions.Contains(1 << level);

    /// <summary>Fewest channels per GroupNorm group, as in DDPM's 128 channels in 32 groups.</summary>
    public const int MinChannelsPerGroup = 4;

    /// <summary>
    /// GroupNorm groups for <paramref name="channels"/> channels: the largest count up to <see cref="MaxNormGroups"/>
    /// that divides them and leaves at least <see cref="MinChannelsPerGroup"/> channels per group. With one channel per
    /// group (32 groups of 32 channels) the norm would subtract exactly the per-channel shift that the time and class
    /// embedding add, and the block would ignore them.
    /// </summary>
    public static int NormGroups(int channels)
    {
        for (int groups = Math.Min(MaxNormGroups, channels / MinChannelsPerGroup); groups > 1; groups--)
            if (channels % groups == 0) return groups;
        return 1;
    }

    /// <inheritdoc />
    [JsonIgnore]
    public override int ClassCount => NumClasses;

    /// <inheritdoc />
    [JsonIgnore]
    public override int OutputFactor => OutputChannelsMultiplier;

    /// <inheritdoc />
    public override NetworkConfig WithOutputFactor(int factor) => this with { OutputChannelsMultiplier = factor };

    /// <inheritdoc />
    public override void CheckExampleShape(long[] exampleShape)
    {
        if (exampleShape.Length != 3)
            throw new DiffuseException($"the U-Net takes images [channels, height, width], but the data's examples have shape [{string.Join(", ", exampleShape)}]; use the MLP for tables.");
        if (exampleShape[0] != Channels)
            throw new DiffuseException($"the U-Net was built for {Channels}-channel images but the data has {exampleShape[0]} channels.");
    }

    /// <inheritdoc />
    public override DiffusionNetwork Create(int trainedTimesteps) => new UNetNetwork(this, trainedTimesteps);

    /// <summary>Throws a <see cref="DiffuseException"/> naming the first invalid value.</summary>
    public override void Validate()
    {
        if (Channels < 1) throw new DiffuseException($"the images must have at least one channel (got {Channels}).");
        if (BaseChannels < 2 || BaseChannels % 2 != 0) throw new DiffuseException($"the base channel count must be even and at least 2 (got {BaseChannels}).");
        if (ChannelMultipliers is null || ChannelMultipliers.Length == 0) throw new DiffuseException("the U-Net needs at least one channel multiplier (one per level).");
        if (ChannelMultipliers.Any(m => m < 1)) throw new DiffuseException($"channel multipliers must be at least 1 (got {string.Join(",", ChannelMultipliers)}).");
        if (BlocksPerLevel < 1) throw new DiffuseException($"the U-Net needs at least one residual block per level (got {BlocksPerLevel}).");
        if (AttentionResolutions is null) throw new DiffuseException("the attention resolutions must be a list (empty for none).");
        foreach (int r in AttentionResolutions)
            if (r < 1 || (r & (r - 1)) != 0 || r >= 1 << Levels)
                throw new DiffuseException($"attention resolution {r} is not the downsampling factor of a level: use one of {string.Join(", ", Enumerable.Range(0, Levels).Select(l => 1 << l))}.");
        if (Heads < 1) throw new DiffuseException($"attention needs at least one head (got {Heads}).");
        foreach (int level in Enumerable.Range(0, Levels).Where(l => HasAttention(l) || l == Levels - 1))
            if (LevelChannels(level) % Heads != 0)
                throw new DiffuseException($"{Heads} attention heads do not divide the {LevelChannels(level)} channels of level {level}.");
        if (TimeEmbedding is < 1) throw new DiffuseException($"the time embedding width must be at least 1 (got {TimeEmbedding}).");
        if (Dropout is < 0 or >= 1 || double.IsNaN(Dropout)) throw new DiffuseException($"dropout must be in [0, 1) (got {Dropout}).");
        if (NumClasses < 0) throw new DiffuseException($"the number of classes cannot be negative (got {NumClasses}).");
        if (OutputChannelsMultiplier is not (1 or 2)) throw new DiffuseException($"the output channel multiplier must be 1 or 2 (got {OutputChannelsMultiplier}).");
        ConfigLimits.Require(Param.Of("UNetConfig.Channels"), Channels, 1, ConfigLimits.MaxChannels);
        ConfigLimits.Require(Param.Of("UNetConfig.BaseChannels"), BaseChannels, 2, ConfigLimits.MaxLevelChannels);
        ConfigLimits.Require(Param.Of("UNetConfig.ChannelMultipliers"), Levels, 1, ConfigLimits.MaxLevels, "levels: one multiplier each");
        foreach (int m in ChannelMultipliers)
            ConfigLimits.Require(Param.Of("UNetConfig.ChannelMultipliers"), (long)BaseChannels * m, 1, ConfigLimits.MaxLevelChannels, "channels of a level: base channels × multiplier");
        ConfigLimits.Require(Param.Of("UNetConfig.BlocksPerLevel"), BlocksPerLevel, 1, ConfigLimits.MaxBlocksPerLevel);
        ConfigLimits.Require(Param.Of("UNetConfig.Heads"), Heads, 1, ConfigLimits.MaxLevelChannels);
        ConfigLimits.Require(Param.Of("UNetConfig.TimeEmbedding"), TimeEmbeddingWidth, 1, ConfigLimits.MaxLevelChannels);
        ConfigLimits.Require(Param.Of("UNetConfig.NumClasses"), NumClasses, 0, ConfigLimits.MaxClasses);
        ConfigLimits.RequireParameters(ParameterCount(), $"the U-Net ({Param.Of("UNetConfig.BaseChannels")} {BaseChannels}, multipliers {string.Join(",", ChannelMultipliers)}, {Param.Of("UNetConfig.BlocksPerLevel")} {BlocksPerLevel})",
            $"fewer {Param.Of("UNetConfig.BaseChannels")}, levels or {Param.Of("UNetConfig.BlocksPerLevel")}");
    }

    /// <inheritdoc />
    internal override IEnumerable<(string Key, long[] Shape)> StateShapes()
    {
        long embedding = TimeEmbeddingWidth;
        var shapes = new List<(string, long[])>();
        shapes.AddRange(Linear("time_mlp.0", BaseChannels, embedding));
        shapes.AddRange(Linear("time_mlp.2", embedding, embedding));
        if (NumClasses > 0) shapes.Add(("class_embedding.weight", [NumClasses + 1L, embedding]));
        shapes.AddRange(Conv("input_conv", Channels, BaseChannels, 3));
        void Norm(string prefix, long channels)
        {
            shapes.Add(($"{prefix}.weight", [channels]));
            shapes.Add(($"{prefix}.bias", [channels]));
        }
        void Residual(string prefix, long inChannels, long outChannels)
        {
            Norm($"{prefix}.in_norm", inChannels);
            shapes.AddRange(Conv($"{prefix}.in_conv", inChannels, outChannels, 3));
            shapes.AddRange(Linear($"{prefix}.time_proj", embedding, ScaleShiftNorm ? 2 * outChannels : outChannels));
            Norm($"{prefix}.out_norm", outChannels);
            shapes.AddRange(Conv($"{prefix}.out_conv", outChannels, outChannels, 3));
            if (inChannels != outChannels) shapes.AddRange(Conv($"{prefix}.skip", inChannels, outChannels, 1));
        }
        void Attention(string prefix, long channels)
        {
            Norm($"{prefix}.norm", channels);
            shapes.AddRange(Conv($"{prefix}.qkv", channels, 3 * channels, 1));
            shapes.AddRange(Conv($"{prefix}.proj", channels, channels, 1));
        }
        // The same walk as UNetNetwork's constructor: channels of every skip connection, in order.
        var skips = new Stack<long>();
        skips.Push(BaseChannels);
        long channels = BaseChannels;
        for (int level = 0; level < Levels; level++)
        {
            for (int i = 0; i < BlocksPerLevel; i++)
            {
                Residual($"down.{level}.res.{i}", channels, LevelChannels(level));
                channels = LevelChannels(level);
                skips.Push(channels);
            }
            if (HasAttention(level))
                for (int i = 0; i < BlocksPerLevel; i++) Attention($"down.{level}.attn.{i}", channels);
            if (level < Levels - 1)
            {
                shapes.AddRange(Conv($"down.{level}.downsample", channels, channels, 3));
                skips.Push(channels);
            }
        }
        Residual("mid.res1", channels, channels);
        Attention("mid.attn", channels);
        Residual("mid.res2", channels, channels);
        for (int level = Levels - 1; level >= 0; level--)
        {
            for (int i = 0; i <= BlocksPerLevel; i++)
            {
                Residual($"up.{level}.res.{i}", channels + skips.Pop(), LevelChannels(level));
                channels = LevelChannels(level);
            }
            if (HasAttention(level))
                for (int i = 0; i <= BlocksPerLevel; i++) Attention($"up.{level}.attn.{i}", channels);
            if (level > 0) shapes.AddRange(Conv($"up.{level}.upsample.conv", channels, channels, 3));
        }
        Norm("out_norm", channels);
        shapes.AddRange(Conv("out_conv", channels, (long)Channels * OutputChannelsMultiplier, 3));
        return shapes;
    }
}
