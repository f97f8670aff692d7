using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Diffuse.Models;

/// <summary>Helpers shared by the U-Net's layers: operation counts (a multiply-add is two operations) and zero init.</summary>
internal static class UNetLayers
{
    public static long ConvFlops(long inChannels, long outChannels, long kernel, long outHeight, long outWidth) =>
        2 * inChannels * outChannels * kernel * kernel * outHeight * outWidth;

    public static long LinearFlops(long inFeatures, long outFeatures) => 2 * inFeatures * outFeatures;

    /// <summary>
    /// GroupNorm (Wu and He 2018) over <paramref name="channels"/> with the identity affine map. TorchSharp 0.107's
    /// <c>GroupNorm</c> leaves weight and bias uninitialised (whatever the allocator returns, values up to 1e30 were
    /// seen), so set them as PyTorch does.
    /// </summary>
    public static GroupNorm Norm(int channels)
    {
        var norm = GroupNorm(UNetConfig.NormGroups(channels), channels);
        using var noGrad = no_grad();
        norm.weight!.fill_(1);
        norm.bias!.zero_();
        return norm;
    }

    /// <summary>
    /// The network input [N, C, H, W] stored channels-last (N, H, W, C order in memory). libtorch's CPU convolutions
    /// (oneDNN) run 5–15% faster on such tensors at the U-Net's sizes (1×1 convolutions up to twice as fast), because
    /// they skip the reorder to and from their blocked layout; element-wise ops, concatenation and nearest upsampling keep
    /// the layout. TorchSharp has no memory-format API: the strides are set directly, which also marks a single-channel
    /// tensor as channels-last (for the input only: no gradient flows here).
    /// </summary>
    public static Tensor ChannelsLastInput(Tensor x)
    {
        long n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        return x.permute(0, 2, 3, 1).contiguous().as_strided(new[] { n, c, h, w }, new[] { h * w * c, 1, w * c, c });
    }

    /// <summary>A channels-last copy of a feature map (one copy; its gradient is one copy back).</summary>
    public static Tensor ChannelsLast(Tensor x) => x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);

    /// <summary>
    /// GroupNorm of a channels-last feature map computed in the standard layout: libtorch's channels-last GroupNorm
    /// kernel is 5–15× slower than its standard one at a few channels per group, more than the two copies cost.
    /// Returns the standard (contiguous) layout.
    /// </summary>
    public static Tensor Normalize(GroupNorm norm, Tensor x) => norm.call(x.contiguous());

    /// <summary>SiLU, in place when <paramref name="inPlace"/> (only for tensors nothing else refers to, without autograd).</summary>
    public static Tensor Silu(Tensor x, bool inPlace) => inPlace ? x.silu_() : functional.silu(x);

    /// <summary>
    /// Dropout (Srivastava et al. 2014) in training: zeroes each element with probability <paramref name="p"/> and
    /// scales the rest by 1/(1 − p). The keep mask is drawn as uniform ≥ p, which libtorch's CPU generator makes about
    /// twice as fast as its Bernoulli sampler (the mask drawing is most of the cost of dropout).
    /// </summary>
    public static Tensor Dropout(Tensor x, double p)
    {
        var mask = rand_like(x).ge_(p).mul_(1 / (1 - p));
        return x * mask;
    }

    /// <summary>Sets a layer's weight and bias to zero, so that a residual branch starts as the identity.</summary>
    public static void ZeroInit(Conv2d conv)
    {
        using var noGrad = no_grad();
        conv.weight!.zero_();
        conv.bias?.zero_();
    }
}

/// <summary>The memory layout of a U-Net's feature maps, shared by all its blocks (so that it can be switched at run time).</summary>
internal sealed class UNetLayout
{
    /// <summary>Whether convolutions get channels-last inputs rather than the standard layout.</summary>
    public bool ChannelsLast { get; set; }

    /// <summary>The input of a convolution in the chosen layout.</summary>
    public Tensor ForConv(Tensor x) => ChannelsLast ? UNetLayers.ChannelsLast(x) : x;

    /// <summary>The network's input in the chosen layout.</summary>
    public Tensor ForInput(Tensor z) => ChannelsLast ? UNetLayers.ChannelsLastInput(z) : z;
}

/// <summary>
/// A residual block of the DDPM U-Net (Ho et al. 2020, App. B): GroupNorm → SiLU → conv3×3, the projected time embedding
/// added (or applied as scale and shift of the second norm, Nichol and Dhariwal 2021), GroupNorm → SiLU → dropout →
/// conv3×3 initialised to zero, plus the input (through a 1×1 conv when the channel count changes).
/// </summary>
internal sealed class UNetResidualBlock : Module<Tensor, Tensor, Tensor>
{
    private readonly int _inChannels;
    private readonly int _outChannels;
    private readonly int _embedding;
    private readonly bool _scaleShift;
    private readonly double _dropout;
    private readonly UNetLayout _layout;
    [ComponentName(Name = "in_norm")] private readonly GroupNorm inNorm;
    [ComponentName(Name = "in_conv")] private readonly Conv2d inConv;
    [ComponentName(Name = "time_proj")] private readonly Linear timeProj;
    [ComponentName(Name = "out_norm")] private readonly GroupNorm outNorm;
    [ComponentName(Name = "out_conv")] private readonly Conv2d outConv;
    [ComponentName(Name = "skip")] private readonly Conv2d? skip;

    public UNetResidualBlock(int inChannels, int outChannels, int embedding, double dropoutRate, bool scaleShift, UNetLayout layout, string name) : base(name)
    {
        _layout = layout;
        _inChannels = inChannels;
        _outChannels = outChannels;
        _embedding = embedding;
        _scaleShift = scaleShift;
        inNorm = UNetLayers.Norm(inChannels);
        inConv = Conv2d(inChannels, outChannels, 3, padding: 1);
        timeProj = Linear(embedding, scaleShift ? 2 * outChannels : outChannels);
        outNorm = UNetLayers.Norm(outChannels);
        _dropout = dropoutRate;
        outConv = Conv2d(outChannels, outChannels, 3, padding: 1);
        UNetLayers.ZeroInit(outConv);
        skip = inChannels == outChannels ? null : Conv2d(inChannels, outChannels, 1);
        RegisterComponents();
    }

    /// <summary>Maps <paramref name="x"/> [B, C_in, H, W] and the activated embedding <paramref name="embedding"/> [B, E] to [B, C_out, H, W].</summary>
    public override Tensor forward(Tensor x, Tensor embedding)
    {
        using var scope = NewDisposeScope();
        // Without autograd, tensors made here are updated in place (no new allocation, one pass less each).
        bool inPlace = !is_grad_enabled();
        // Norms, activations and dropout run in the standard layout, convolutions in the network's layout (see UNetLayers).
        var h = inConv.call(_layout.ForConv(UNetLayers.Silu(UNetLayers.Normalize(inNorm, x), inPlace)));
        var e = timeProj.call(embedding).unsqueeze(-1).unsqueeze(-1);
        if (_scaleShift)
        {
            var scaleShift = e.chunk(2, 1);
            var normed = UNetLayers.Normalize(outNorm, h);
            h = inPlace ? normed.mul_(scaleShift[0] + 1).add_(scaleShift[1]) : addcmul(scaleShift[1], normed, scaleShift[0] + 1, 1);
        }
        else
        {
            h = UNetLayers.Normalize(outNorm, inPlace ? h.add_(e) : h + e);
        }
        h = UNetLayers.Silu(h, inPlace);
        if (training && _dropout > 0) h = UNetLayers.Dropout(h, _dropout);
        h = outConv.call(_layout.ForConv(h));
        var residual = skip is null ? x : skip.call(x);
        return (inPlace ? h.add_(residual) : residual + h).MoveToOuterDisposeScope();
    }

    public long Flops(long height, long width) =>
        UNetLayers.ConvFlops(_inChannels, _outChannels, 3, height, width)
        + UNetLayers.LinearFlops(_embedding, _scaleShift ? 2 * _outChannels : _outChannels)
        + UNetLayers.ConvFlops(_outChannels, _outChannels, 3, height, width)
        + (skip is null ? 0 : UNetLayers.ConvFlops(_inChannels, _outChannels, 1, height, width));
}

/// <summary>
/// Self-attention over the H·W positions of a feature map (Vaswani et al. 2017, as placed in the DDPM U-Net by Ho et al.
/// 2020): GroupNorm → 1×1 conv to queries, keys and values → multi-head scaled dot-product attention → 1×1 projection
/// initialised to zero, added to the input.
/// </summary>
internal sealed class UNetAttentionBlock : Module<Tensor, Tensor>
{
    private readonly int _channels;
    private readonly int _heads;
    private readonly UNetLayout _layout;
    [ComponentName(Name = "norm")] private readonly GroupNorm norm;
    [ComponentName(Name = "qkv")] private readonly Conv2d qkv;
    [ComponentName(Name = "proj")] private readonly Conv2d proj;

    public UNetAttentionBlock(int channels, int heads, UNetLayout layout, string name) : base(name)
    {
        _layout = layout;
        _channels = channels;
        _heads = heads;
        norm = UNetLayers.Norm(channels);
        qkv = Conv2d(channels, 3 * channels, 1);
        proj = Conv2d(channels, channels, 1);
        UNetLayers.ZeroInit(proj);
        RegisterComponents();
    }

    /// <summary>Maps <paramref name="x"/> [B, C, H, W] to x + attention(x) of the same shape.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long batch = x.shape[0], height = x.shape[2], width = x.shape[3];
        long positions = height * width, headChannels = _channels / _heads;
        // [B, 3C, H, W] → [3, B, heads, H·W, C/heads]: one permuted view, split without copies.
        var normed = _layout.ForConv(UNetLayers.Normalize(norm, x));
        var qkvHeads = qkv.call(normed).reshape(batch, 3, _heads, headChannels, positions).permute(1, 0, 2, 4, 3);
        var attended = functional.scaled_dot_product_attention(qkvHeads[0], qkvHeads[1], qkvHeads[2]);
        // [B, heads, H·W, C/heads] → [B, C, H, W] in the layout of the input (channels-last: memory order B, H·W, C).
        var merged = _layout.ChannelsLast
            ? attended.permute(0, 2, 1, 3).reshape(batch, height, width, _channels).permute(0, 3, 1, 2)
            : attended.transpose(2, 3).reshape(batch, _channels, height, width);
        var projected = proj.call(merged);
        return (is_grad_enabled() ? x + projected : projected.add_(x)).MoveToOuterDisposeScope();
    }

    public long Flops(long height, long width)
    {
        long positions = height * width;
        return UNetLayers.ConvFlops(_channels, 3 * _channels, 1, height, width)
            + 2 * 2 * positions * positions * _channels // Q·Kᵀ and softmax(Q·Kᵀ)·V over all heads
            + UNetLayers.ConvFlops(_channels, _channels, 1, height, width);
    }
}

/// <summary>Nearest-neighbour upsampling to a given size (twice the input, or a skip connection's odd size), then a 3×3 conv.</summary>
internal sealed class UNetUpsample : Module<Tensor, long[], Tensor>
{
    private readonly int _channels;
    [ComponentName(Name = "conv")] private readonly Conv2d conv;

    public UNetUpsample(int channels, string name) : base(name)
    {
        _channels = channels;
        conv = Conv2d(channels, channels, 3, padding: 1);
        RegisterComponents();
    }

    /// <summary>Maps <paramref name="x"/> [B, C, H, W] to [B, C, size[0], size[1]].</summary>
    public override Tensor forward(Tensor x, long[] size)
    {
        using var scope = NewDisposeScope();
        var upsampled = size[0] == 2 * x.shape[2] && size[1] == 2 * x.shape[3]
            ? functional.interpolate(x, scale_factor: new[] { 2.0, 2.0 }, mode: InterpolationMode.Nearest)
            : functional.interpolate(x, size: size, mode: InterpolationMode.Nearest);
        return conv.call(upsampled).MoveToOuterDisposeScope();
    }

    public long Flops(long height, long width) => UNetLayers.ConvFlops(_channels, _channels, 3, height, width);
}

/// <summary>One resolution level of the U-Net: residual blocks, each optionally followed by self-attention.</summary>
internal sealed class UNetLevel : Module
{
    [ComponentName(Name = "res")] private readonly ModuleList<UNetResidualBlock> res;
    [ComponentName(Name = "attn")] private readonly ModuleList<UNetAttentionBlock> attn;
    [ComponentName(Name = "downsample")] private readonly Conv2d? downsample;
    [ComponentName(Name = "upsample")] private readonly UNetUpsample? upsample;

    public UNetLevel(UNetResidualBlock[] blocks, UNetAttentionBlock[] attention, Conv2d? downsample, UNetUpsample? upsample, string name) : base(name)
    {
        res = new ModuleList<UNetResidualBlock>(blocks);
        attn = new ModuleList<UNetAttentionBlock>(attention);
        this.downsample = downsample;
        this.upsample = upsample;
        RegisterComponents();
    }

    public IList<UNetResidualBlock> Blocks => res;
    public IList<UNetAttentionBlock> Attention => attn;
    public Conv2d? Downsample => downsample;
    public UNetUpsample? Upsample => upsample;

    /// <summary>Residual block <paramref name="i"/> and its attention, if the level has it (skip connections sit between blocks).</summary>
    public Tensor Block(int i, Tensor h, Tensor embedding)
    {
        var output = res[i].call(h, embedding);
        return attn.Count == 0 ? output : attn[i].call(output);
    }
}

/// <summary>The middle of the U-Net at the lowest resolution: residual block, self-attention, residual block.</summary>
internal sealed class UNetMiddle : Module<Tensor, Tensor, Tensor>
{
    [ComponentName(Name = "res1")] private readonly UNetResidualBlock res1;
    [ComponentName(Name = "attn")] private readonly UNetAttentionBlock attn;
    [ComponentName(Name = "res2")] private readonly UNetResidualBlock res2;

    public UNetMiddle(int channels, UNetConfig config, UNetLayout layout, string name) : base(name)
    {
        res1 = new UNetResidualBlock(channels, channels, config.TimeEmbeddingWidth, config.Dropout, config.ScaleShiftNorm, layout, "res1");
        attn = new UNetAttentionBlock(channels, config.Heads, layout, "attn");
        res2 = new UNetResidualBlock(channels, channels, config.TimeEmbeddingWidth, config.Dropout, config.ScaleShiftNorm, layout, "res2");
        RegisterComponents();
    }

    public override Tensor forward(Tensor h, Tensor embedding)
    {
        using var scope = NewDisposeScope();
        return res2.call(attn.call(res1.call(h, embedding)), embedding).MoveToOuterDisposeScope();
    }

    public long Flops(long height, long width) => res1.Flops(height, width) + attn.Flops(height, width) + res2.Flops(height, width);
}
